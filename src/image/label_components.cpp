// Connected-component cleanup of a segmentation with ITK: per vertebra label, only the largest 3-D component
// survives (stray islands of "C3" inside C5 would otherwise stretch C3's extent and its crop).
#include <itkImage.h>
#include <itkImportImageFilter.h>
#include <itkScalarConnectedComponentImageFilter.h>

#include <algorithm>
#include <limits>

#include "cspine/error.h"
#include "cspine/predict.h"

namespace cspine {

std::size_t keep_largest_components(std::vector<uint8_t>& labels, const std::array<int, 3>& size, int first,
                                    int last) {
  const std::size_t n = static_cast<std::size_t>(size[0]) * size[1] * size[2];
  if (labels.size() != n) throw Error(ExitCode::internal, "keep_largest_components: label map does not match its size");
  if (n == 0) return 0;
  using LabelImage = itk::Image<uint8_t, 3>;
  using ComponentImage = itk::Image<uint32_t, 3>;
  auto import = itk::ImportImageFilter<uint8_t, 3>::New();
  itk::ImportImageFilter<uint8_t, 3>::SizeType sz;
  for (int d = 0; d < 3; ++d) sz[d] = static_cast<itk::SizeValueType>(size[d]);
  itk::ImportImageFilter<uint8_t, 3>::RegionType region;
  region.SetSize(sz);
  import->SetRegion(region);
  import->SetImportPointer(labels.data(), n, false);  // ITK reads our buffer in place

  // Neighbouring voxels join a component only when their labels are equal (distance threshold 0).
  auto cc = itk::ScalarConnectedComponentImageFilter<LabelImage, ComponentImage>::New();
  cc->SetInput(import->GetOutput());
  cc->SetDistanceThreshold(0);
  cc->SetFullyConnected(false);
  cc->SetBackgroundValue(0);
  cc->Update();
  const uint32_t* comp = cc->GetOutput()->GetBufferPointer();

  // Component numbers are not guaranteed to be consecutive (GetObjectCount is not reliable for this filter).
  uint32_t max_component = 0;
  for (std::size_t v = 0; v < n; ++v) max_component = std::max(max_component, comp[v]);
  const std::size_t count = static_cast<std::size_t>(max_component) + 1;
  std::vector<std::size_t> voxels(count, 0), first_voxel(count, std::numeric_limits<std::size_t>::max());
  std::vector<uint8_t> label_of(count, 0);
  for (std::size_t v = 0; v < n; ++v) {
    const uint32_t c = comp[v];
    if (c == 0) continue;
    if (voxels[c]++ == 0) {
      first_voxel[c] = v;
      label_of[c] = labels[v];
    }
  }
  // The component each label keeps: most voxels, then first in raster order.
  std::array<uint32_t, 256> keep{};
  for (std::size_t c = 1; c < count; ++c) {
    const uint8_t l = label_of[c];
    if (l < first || l > last || voxels[c] == 0) continue;
    const uint32_t k = keep[l];
    if (k == 0 || voxels[c] > voxels[k] || (voxels[c] == voxels[k] && first_voxel[c] < first_voxel[k]))
      keep[l] = static_cast<uint32_t>(c);
  }
  std::size_t removed = 0;
  for (std::size_t v = 0; v < n; ++v) {
    const uint8_t l = labels[v];
    if (l < first || l > last || comp[v] == keep[l]) continue;
    labels[v] = 0;
    ++removed;
  }
  return removed;
}

}  // namespace cspine
