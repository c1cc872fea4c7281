// The LibTorch model backend plugin (libcspine_torch.so). Everything that includes LibTorch headers is
// compiled into this module, never into cspine_core, so only commands that run models pay for loading it.
#include <caffe2/serialize/inline_container.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "cspine/backend.h"

extern "C" {

__attribute__((visibility("default"))) int cspine_backend_abi_version() {
  return cspine::kBackendAbiVersion;
}

__attribute__((visibility("default"))) const char* cspine_backend_info() {
  static const std::string info = [] {
    std::string s = "LibTorch " + std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) +
                    "." + std::to_string(TORCH_VERSION_PATCH);
    const bool cuda = torch::cuda::is_available();
    s += cuda ? ", CUDA available (" + std::to_string(torch::cuda::device_count()) + " device(s))"
              : ", CUDA not available";
    return s;
  }();
  return info.c_str();
}

// Copies the extra file `name` of the TorchScript archive at `path` into a malloc'ed buffer (release it with
// cspine_backend_free). Returns 0 on success, 1 when the archive has no such file, 2 when `path` cannot be
// read as an archive (reason in `err`, NUL-terminated, truncated to err_size).
__attribute__((visibility("default"))) int cspine_backend_read_extra(const char* path, const char* name, char** data,
                                                                     size_t* size, char* err, size_t err_size) {
  *data = nullptr;
  *size = 0;
  try {
    caffe2::serialize::PyTorchStreamReader reader{std::string(path)};
    const std::string record = std::string("extra/") + name;
    if (!reader.hasRecord(record)) return 1;
    auto [ptr, n] = reader.getRecord(record);
    char* buf = static_cast<char*>(std::malloc(n + 1));
    if (!buf) return 2;
    std::memcpy(buf, ptr.get(), n);
    buf[n] = 0;
    *data = buf;
    *size = n;
    return 0;
  } catch (const std::exception& e) {
    if (err && err_size) {
      std::strncpy(err, e.what(), err_size - 1);
      err[err_size - 1] = 0;
      if (char* nl = std::strchr(err, '\n')) *nl = 0;  // c10 messages append a backtrace after the first line
    }
    return 2;
  }
}

__attribute__((visibility("default"))) void cspine_backend_free(void* p) {
  std::free(p);
}

}  // extern "C"
