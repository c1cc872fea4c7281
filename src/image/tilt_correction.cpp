#include "image/tilt_correction.h"

#include <itkImage.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkResampleImageFilter.h>
#include <itkTranslationTransform.h>

#include <algorithm>
#include <cmath>

#include "cspine/error.h"
#include "util/parallel.h"

namespace cspine {

double correct_gantry_tilt(Volume& v, const std::vector<std::array<double, 3>>& positions, int16_t fill, int threads) {
  if (positions.size() != static_cast<std::size_t>(v.size[2]))
    throw Error(ExitCode::internal, "tilt correction: one position per slice is needed");
  using Slice = itk::Image<int16_t, 2>;
  const auto r = v.axis(0), c = v.axis(1);
  double max_shift = 0;
  std::vector<std::array<double, 2>> shifts(positions.size());
  for (std::size_t k = 0; k < positions.size(); ++k) {
    // Where the slice really is, minus where the orthogonal grid puts it, in the slice's own axes.
    const auto grid = v.voxel_to_lps(0, 0, static_cast<double>(k));
    const std::array<double, 3> d{positions[k][0] - grid[0], positions[k][1] - grid[1], positions[k][2] - grid[2]};
    shifts[k] = {d[0] * r[0] + d[1] * r[1] + d[2] * r[2], d[0] * c[0] + d[1] * c[1] + d[2] * c[2]};
    max_shift = std::max(max_shift, std::hypot(shifts[k][0], shifts[k][1]));
  }
  if (max_shift < 1e-3) return max_shift;

  const std::size_t plane = v.slice_voxels();
  // Slices are independent; ITK's own threading is kept to one thread per slice so the two levels of
  // parallelism do not multiply.
  parallel_for(positions.size(), threads, [&](std::size_t k) {
    if (std::hypot(shifts[k][0], shifts[k][1]) < 1e-3) return;
    auto in = Slice::New();
    Slice::RegionType region;
    region.SetSize({{static_cast<itk::SizeValueType>(v.size[0]), static_cast<itk::SizeValueType>(v.size[1])}});
    in->SetRegions(region);
    in->SetSpacing(std::array<double, 2>{v.spacing[0], v.spacing[1]}.data());
    std::vector<int16_t> copy(v.slice(static_cast<int>(k)), v.slice(static_cast<int>(k)) + plane);
    in->GetPixelContainer()->SetImportPointer(copy.data(), plane, false);

    // The slice's content sits `shift` further along its axes than the grid assumes: an output point p
    // (grid coordinates) shows the input at p - shift.
    auto transform = itk::TranslationTransform<double, 2>::New();
    itk::TranslationTransform<double, 2>::OutputVectorType offset;
    offset[0] = -shifts[k][0];
    offset[1] = -shifts[k][1];
    transform->Translate(offset);

    auto resample = itk::ResampleImageFilter<Slice, Slice, double>::New();
    resample->SetInput(in);
    resample->SetTransform(transform);
    resample->SetInterpolator(itk::LinearInterpolateImageFunction<Slice, double>::New());
    resample->SetDefaultPixelValue(fill);
    resample->SetOutputParametersFromImage(in);
    resample->SetNumberOfWorkUnits(1);
    try {
      resample->Update();
    } catch (const itk::ExceptionObject& e) {
      throw Error(ExitCode::internal, std::string("tilt correction failed: ") + e.GetDescription());
    }
    const int16_t* out = resample->GetOutput()->GetBufferPointer();
    std::copy(out, out + plane, v.slice(static_cast<int>(k)));
  });
  return max_shift;
}

}  // namespace cspine
