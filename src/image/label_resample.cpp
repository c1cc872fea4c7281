// Label maps onto a CT's voxel grid with ITK (nearest neighbour through both headers): a segmentation stored
// in another orientation (the RSNA files are LAS with the rows flipped) lands voxel for voxel on the CT.
#include <itkImage.h>
#include <itkImageFileReader.h>
#include <itkNearestNeighborInterpolateImageFunction.h>
#include <itkNiftiImageIO.h>
#include <itkResampleImageFilter.h>

#include "cspine/error.h"
#include "cspine/volume.h"

namespace cspine {

std::vector<uint8_t> read_labels_on_grid(const std::string& path, const Volume& ct) {
  using Image = itk::Image<uint8_t, 3>;
  auto reader = itk::ImageFileReader<Image>::New();
  reader->SetImageIO(itk::NiftiImageIO::New());
  reader->SetFileName(path);
  auto resample = itk::ResampleImageFilter<Image, Image>::New();
  resample->SetInput(reader->GetOutput());
  resample->SetInterpolator(itk::NearestNeighborInterpolateImageFunction<Image, double>::New());
  resample->SetDefaultPixelValue(0);
  Image::SizeType size;
  Image::SpacingType spacing;
  Image::PointType origin;
  Image::DirectionType direction;
  for (int r = 0; r < 3; ++r) {
    size[r] = static_cast<itk::SizeValueType>(ct.size[r]);
    spacing[r] = ct.spacing[r];
    origin[r] = ct.origin[r];
    for (int c = 0; c < 3; ++c) direction[r][c] = ct.direction[r * 3 + c];
  }
  resample->SetSize(size);
  resample->SetOutputSpacing(spacing);
  resample->SetOutputOrigin(origin);
  resample->SetOutputDirection(direction);
  try {
    resample->Update();
  } catch (const itk::ExceptionObject& e) {
    throw InputError("cannot read label map '" + path + "': " + e.GetDescription());
  }
  const Image* out = resample->GetOutput();
  return std::vector<uint8_t>(out->GetBufferPointer(), out->GetBufferPointer() + ct.voxel_count());
}

}  // namespace cspine
