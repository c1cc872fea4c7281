// NIfTI through ITK: ITK keeps images in LPS and converts to the RAS convention of the NIfTI header on
// write and back on read, so a header-aware reader (nibabel, 3D Slicer, dcm2niix's output) agrees with us.
#include <itkImage.h>
#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>
#include <itkNiftiImageIO.h>

#include <algorithm>

#include "cspine/error.h"
#include "cspine/volume.h"
#include "util/atomic_file.h"

namespace cspine {

using ItkImage = itk::Image<int16_t, 3>;

namespace {
template <typename Pixel>
void write_image(const Volume& v, const Pixel* data, std::size_t count, const std::string& path) {
  using Image = itk::Image<Pixel, 3>;
  if (count != v.voxel_count()) throw Error(ExitCode::internal, "image buffer does not match the volume's size");
  auto image = Image::New();
  typename Image::RegionType region;
  typename Image::SizeType size;
  for (int d = 0; d < 3; ++d) size[d] = static_cast<itk::SizeValueType>(v.size[d]);
  region.SetSize(size);
  image->SetRegions(region);
  typename Image::SpacingType spacing;
  typename Image::PointType origin;
  typename Image::DirectionType direction;
  for (int r = 0; r < 3; ++r) {
    spacing[r] = v.spacing[r];
    origin[r] = v.origin[r];
    for (int c = 0; c < 3; ++c) direction[r][c] = v.direction[r * 3 + c];
  }
  image->SetSpacing(spacing);
  image->SetOrigin(origin);
  image->SetDirection(direction);
  // Let ITK write straight from our buffer: no second copy of the volume.
  image->GetPixelContainer()->SetImportPointer(const_cast<Pixel*>(data), count, false);

  write_atomically(path, [&](const std::string& tmp) {
    auto writer = itk::ImageFileWriter<Image>::New();
    writer->SetImageIO(itk::NiftiImageIO::New());
    writer->SetFileName(tmp);
    writer->SetInput(image);
    try {
      writer->Update();
    } catch (const itk::ExceptionObject& e) {
      throw OutputError("cannot write NIfTI '" + path + "': " + e.GetDescription());
    }
  });
}
}  // namespace

void write_nifti(const Volume& v, const std::string& path) { write_image(v, v.hu.data(), v.hu.size(), path); }

void write_label_nifti(const Volume& geometry, const std::vector<uint8_t>& labels, const std::string& path) {
  write_image(geometry, labels.data(), labels.size(), path);
}

Volume read_nifti(const std::string& path) {
  auto reader = itk::ImageFileReader<ItkImage>::New();
  reader->SetImageIO(itk::NiftiImageIO::New());
  reader->SetFileName(path);
  try {
    reader->Update();
  } catch (const itk::ExceptionObject& e) {
    throw InputError("cannot read NIfTI '" + path + "': " + e.GetDescription());
  }
  ItkImage::Pointer image = reader->GetOutput();
  Volume v;
  const auto size = image->GetLargestPossibleRegion().GetSize();
  for (int d = 0; d < 3; ++d) {
    v.size[d] = static_cast<int>(size[d]);
    v.spacing[d] = image->GetSpacing()[d];
    v.origin[d] = image->GetOrigin()[d];
    for (int c = 0; c < 3; ++c) v.direction[d * 3 + c] = image->GetDirection()[d][c];
  }
  v.hu.assign(image->GetBufferPointer(), image->GetBufferPointer() + v.voxel_count());
  v.slice_positions.resize(static_cast<std::size_t>(v.size[2]));
  for (int k = 0; k < v.size[2]; ++k) v.slice_positions[static_cast<std::size_t>(k)] = k * v.spacing[2];
  return v;
}

}  // namespace cspine
