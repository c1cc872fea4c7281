// The model backend (LibTorch) lives in a plugin, libcspine_torch.so, loaded only by the commands that run
// models. Why: LibTorch and its dependencies take about 0.45 s and 150 MB just to load, which would make
// `inspect` and `convert` slower than dcm2niix; with the plugin they start in milliseconds. It also lets a
// CUDA build of the backend sit beside a CPU build of everything else.
//
// The boundary stays C: extern "C" entry points, plain structs and raw buffers, never std::string or
// other standard library types. A LibTorch from a pip wheel may be built with the pre-C++11 std::string
// ABI (TorchConfig puts -D_GLIBCXX_USE_CXX11_ABI=0 on the plugin), while the Debian libraries the core
// links (DCMTK, ITK, spdlog) use the C++11 one; a C boundary lets both live in one process.
#pragma once
#include <string>

namespace cspine {

// Bumped whenever the plugin's entry points change; the loader refuses a plugin built for another one.
inline constexpr int kBackendAbiVersion = 2;

// Path of the backend plugin that would be loaded, or empty when none is found. Search order:
// $CSPINE_TORCH_BACKEND, the executable's folder, <exe>/../lib/cspine, the build tree.
std::string find_backend_plugin();

// Loads the plugin (once per process) and returns its description: LibTorch version and devices.
// Throws cspine::Error with what was tried when it cannot be loaded.
std::string backend_info();

// Reads the extra file `name` stored in a TorchScript archive (torch.jit.save(..., _extra_files=...))
// without loading the model. Returns false when the archive has no such file; throws ModelError when the
// file is not a readable TorchScript archive and cspine::Error when the backend cannot be loaded.
bool read_model_extra(const std::string& model_path, const std::string& name, std::string& out);

}  // namespace cspine
