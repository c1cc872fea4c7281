// Facts about the build, so a user can tell which LibTorch (and whether CUDA) a binary carries.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <gdcmVersion.h>
#include <itkVersion.h>

#include <sstream>

#include "cspine/runtime.h"

#include "cspine/backend.h"

namespace cspine {

std::string version() { return CSPINE_VERSION; }

std::string build_info() {
  std::ostringstream os;
  os << "cspine " << CSPINE_VERSION << "\n";
  os << "DCMTK " << OFFIS_DCMTK_VERSION_STRING << "\n";
  os << "GDCM " << gdcm::Version::GetVersion() << " (JPEG 2000)\n";
  os << "ITK " << itk::Version::GetITKVersion() << "\n";
  try {
    os << backend_info() << "\n";
  } catch (const std::exception& e) {
    os << "LibTorch backend unavailable: " << e.what() << "\n";
  }
  os << "threads " << default_threads() << "\n";
  return os.str();
}

}  // namespace cspine
