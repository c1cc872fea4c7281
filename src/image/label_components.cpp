// Connected-component cleanup of a segmentation with ITK: per vertebra label, only the largest 3-D component
// survives (stray islands of "C3" inside C5 would otherwise stretch C3's extent and its crop).
#include <itkImage.h>
#include <itkImportImageFilter.h>
#include <itkScalarConnectedComponentImageFilter.h>

#include <algorithm>
#include <limits>

#include "cspine/error.h"
#include "cspine/labels.h"

namespace cspine {

std::size_t keep_largest_components(std::vector<uint8_t>& labels, const std::array<int, 3>& size, int first,
                                    int last) {
  const std::size_t n = static_cast<std::size_t>(size[0]) * size[1] * size[2];
  if (labels.size() != n) throw Error(ExitCode::internal, "keep_largest_components: label map does not match its size");
  if (n == 0) return 0;
  auto in_range = [&](uint8_t l) { return l >= first && l <= last; };

  // Only the box around the labels in range is labelled (the cervical vertebrae are a small part of a study),
  // with every other label as background: components join equal labels only, so the result is the same, and
  // raster order inside the box is the volume's raster order, so ties go the same way.
  std::array<int, 3> lo{size[0], size[1], size[2]}, hi{-1, -1, -1};
  for (int k = 0; k < size[2]; ++k)
    for (int j = 0; j < size[1]; ++j) {
      const uint8_t* row = labels.data() + (static_cast<std::size_t>(k) * size[1] + j) * size[0];
      for (int i = 0; i < size[0]; ++i) {
        if (!in_range(row[i])) continue;
        lo = {std::min(lo[0], i), std::min(lo[1], j), std::min(lo[2], k)};
        hi = {std::max(hi[0], i), std::max(hi[1], j), std::max(hi[2], k)};
      }
    }
  if (hi[0] < 0) return 0;  // none of those labels
  const std::array<int, 3> box{hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1};
  const std::size_t m = static_cast<std::size_t>(box[0]) * box[1] * box[2];
  auto at = [&](int i, int j, int k) {  // box voxel -> volume index
    return (static_cast<std::size_t>(k + lo[2]) * size[1] + static_cast<std::size_t>(j + lo[1])) * size[0] +
           static_cast<std::size_t>(i + lo[0]);
  };
  std::vector<uint8_t> sub(m);
  std::size_t v = 0;
  for (int k = 0; k < box[2]; ++k)
    for (int j = 0; j < box[1]; ++j)
      for (int i = 0; i < box[0]; ++i, ++v) {
        const uint8_t l = labels[at(i, j, k)];
        sub[v] = in_range(l) ? l : 0;
      }

  using LabelImage = itk::Image<uint8_t, 3>;
  using ComponentImage = itk::Image<uint32_t, 3>;
  auto import = itk::ImportImageFilter<uint8_t, 3>::New();
  itk::ImportImageFilter<uint8_t, 3>::SizeType sz;
  for (int d = 0; d < 3; ++d) sz[d] = static_cast<itk::SizeValueType>(box[d]);
  itk::ImportImageFilter<uint8_t, 3>::RegionType region;
  region.SetSize(sz);
  import->SetRegion(region);
  import->SetImportPointer(sub.data(), m, false);  // ITK reads our buffer in place

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
  for (std::size_t c = 0; c < m; ++c) max_component = std::max(max_component, comp[c]);
  const std::size_t count = static_cast<std::size_t>(max_component) + 1;
  std::vector<std::size_t> voxels(count, 0), first_voxel(count, std::numeric_limits<std::size_t>::max());
  std::vector<uint8_t> label_of(count, 0);
  for (std::size_t w = 0; w < m; ++w) {
    const uint32_t c = comp[w];
    if (c == 0) continue;
    if (voxels[c]++ == 0) {
      first_voxel[c] = w;
      label_of[c] = sub[w];
    }
  }
  // The component each label keeps: most voxels, then first in raster order.
  std::array<uint32_t, 256> keep{};
  for (std::size_t c = 1; c < count; ++c) {
    const uint8_t l = label_of[c];
    if (voxels[c] == 0) continue;
    const uint32_t k = keep[l];
    if (k == 0 || voxels[c] > voxels[k] || (voxels[c] == voxels[k] && first_voxel[c] < first_voxel[k]))
      keep[l] = static_cast<uint32_t>(c);
  }
  std::size_t removed = 0;
  v = 0;
  for (int k = 0; k < box[2]; ++k)
    for (int j = 0; j < box[1]; ++j)
      for (int i = 0; i < box[0]; ++i, ++v) {
        const uint8_t l = sub[v];
        if (l == 0 || comp[v] == keep[l]) continue;
        labels[at(i, j, k)] = 0;
        ++removed;
      }
  return removed;
}

}  // namespace cspine
