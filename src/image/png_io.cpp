#include "image/png_io.h"

#include <itkImage.h>
#include <itkImageFileWriter.h>
#include <itkPNGImageIO.h>
#include <itkRGBPixel.h>

#include <cstring>

#include "cspine/error.h"
#include "util/atomic_file.h"

namespace cspine {

void write_rgb_png(const std::string& path, int width, int height, const std::vector<uint8_t>& rgb) {
  using Pixel = itk::RGBPixel<unsigned char>;
  using Image = itk::Image<Pixel, 2>;
  if (width <= 0 || height <= 0 || rgb.size() != static_cast<std::size_t>(width) * height * 3)
    throw Error(ExitCode::internal,
                "write_rgb_png: buffer does not match " + std::to_string(width) + "x" + std::to_string(height));
  auto image = Image::New();
  Image::RegionType region;
  region.SetSize({{static_cast<itk::SizeValueType>(width), static_cast<itk::SizeValueType>(height)}});
  image->SetRegions(region);
  image->Allocate();
  static_assert(sizeof(Pixel) == 3, "RGBPixel<unsigned char> is three packed bytes");
  std::memcpy(image->GetBufferPointer(), rgb.data(), rgb.size());
  write_atomically(path, [&](const std::string& tmp) {
    auto writer = itk::ImageFileWriter<Image>::New();
    writer->SetImageIO(itk::PNGImageIO::New());
    writer->SetFileName(tmp);
    writer->SetInput(image);
    try {
      writer->Update();
    } catch (const itk::ExceptionObject& e) {
      throw OutputError("cannot write PNG '" + path + "': " + e.GetDescription());
    }
  });
}

}  // namespace cspine
