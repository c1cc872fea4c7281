// The LibTorch model backend plugin (libcspine_torch.so). Everything that includes LibTorch headers is
// compiled into this module, never into cspine_core, so only commands that run models pay for loading it.
#include <torch/cuda.h>
#include <torch/version.h>

#include <string>

#include "cspine/backend.h"

extern "C" {

__attribute__((visibility("default"))) int cspine_backend_abi_version() { return cspine::kBackendAbiVersion; }

__attribute__((visibility("default"))) const char* cspine_backend_info() {
  static const std::string info = [] {
    std::string s = "LibTorch " + std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) +
                    "." + std::to_string(TORCH_VERSION_PATCH);
    const bool cuda = torch::cuda::is_available();
    s += cuda ? ", CUDA available (" + std::to_string(torch::cuda::device_count()) + " device(s))" : ", CUDA not available";
    return s;
  }();
  return info.c_str();
}

}  // extern "C"
