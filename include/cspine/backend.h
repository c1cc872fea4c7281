// The model backend (LibTorch) lives in a plugin, libcspine_torch.so, loaded only by the commands that run
// models. Why: LibTorch and its dependencies take about 0.45 s and 150 MB just to load, which would make
// `inspect` and `convert` slower than dcm2niix; with the plugin they start in milliseconds. It also lets a
// CUDA build of the backend sit beside a CPU build of everything else.
//
// The boundary stays C (include/cspine/backend_abi.h, included by both sides): extern "C" entry points, plain
// structs and raw buffers, never std::string or other standard library types. A LibTorch from a pip wheel may be
// built with the pre-C++11 std::string ABI (TorchConfig puts -D_GLIBCXX_USE_CXX11_ABI=0 on the plugin), while the
// Debian libraries the core links (DCMTK, ITK, spdlog) use the C++11 one; a C boundary lets both live in one process.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cspine/backend_abi.h"
#include "cspine/contract.h"

namespace cspine {

// Bumped whenever the plugin's entry points change (include/cspine/backend_abi.h lists the versions); the loader
// refuses a plugin built for another one.
inline constexpr int kBackendAbiVersion = CSPINE_BACKEND_ABI_VERSION;


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

// Sets LibTorch's intra-op thread count (0 leaves its default: all cores).
void set_backend_threads(int threads);

// A model output copied to host memory: float32 values, or uint8 class indices after an argmax.
struct HostTensor {
  std::vector<int64_t> shape;
  std::vector<float> values;   // dtype float32
  std::vector<uint8_t> labels; // dtype uint8 (argmax)
  int64_t channels = 0;        // size of dimension 1 before the argmax
  int64_t numel() const;
};

class TorchModel;

// The argmax decoding of a softmax segmentation (TorchModel::forward's `decode`).
inline constexpr cspine_decode kDecodeArgmax{CSPINE_DECODE_ARGMAX, 0.0};

// The classifier's input for `items` vertebrae, built where the volume is: item i is the square crop
// boxes[3i..3i+2] = (x, y, side) of the slices indices[i*slices_per_item*channels ...], windowed to
// [hu_low, hu_high] inside the image (0 outside), resized bilinearly to height x width; side 0 = all zeros.
struct CropRequest {
  double hu_low = 0, hu_high = 1;
  int64_t items = 0, slices_per_item = 0, channels = 0, height = 0, width = 0;
  std::vector<int32_t> boxes;    // items x 3
  std::vector<int32_t> indices;  // items x slices_per_item x channels
};

// A study's int16 HU volume placed on a model's device once (TorchModel::upload): on CUDA a device copy sent
// through pinned memory, on the CPU a reference to the host volume, which must outlive it.
class DeviceVolume {
public:
  DeviceVolume() = default;
  ~DeviceVolume();
  DeviceVolume(DeviceVolume&& o) noexcept : handle_(o.handle_) { o.handle_ = nullptr; }
  DeviceVolume& operator=(DeviceVolume&& o) noexcept;
  DeviceVolume(const DeviceVolume&) = delete;
  DeviceVolume& operator=(const DeviceVolume&) = delete;

private:
  friend class TorchModel;
  friend std::vector<float> device_crops(const DeviceVolume&, const CropRequest&);
  void* handle_ = nullptr;
};

// The crops of `request` copied back to the host (items x slices x channels x height x width floats): what
// TorchModel::classify_crops feeds its model. For tests and tools.
std::vector<float> device_crops(const DeviceVolume& volume, const CropRequest& request);

// A TorchScript model loaded once on a device ("auto", "cpu", "cuda", "cuda:N"), optionally in half precision
// (CUDA only). Loading throws ModelError when the file is not a loadable model and UsageError when the device
// cannot be used; running throws ModelError with LibTorch's reason (wrong input shape, ...).
class TorchModel {
public:
  // `exact_numerics` (contract runtime.numerics "exact"): no optimisation that changes results (the freezing passes
  // that fold batch norms into convolutions are left out).
  TorchModel(const std::string& path, const std::string& device, bool fp16, bool exact_numerics = false);
  ~TorchModel();
  TorchModel(const TorchModel&) = delete;
  TorchModel& operator=(const TorchModel&) = delete;

  const std::string& path() const { return path_; }
  // The device it runs on, resolved ("cpu", "cuda:0").
  std::string device() const;
  // Runs the model on a float32 input of the given shape; with a `decode`, output 0 comes back as uint8 channel
  // indices over dimension 1 (include/cspine/backend_abi.h: argmax, or sigmoid with a threshold), which keeps the
  // transfer from the device small.
  std::vector<HostTensor> forward(const float* input, const std::vector<int64_t>& shape,
                                  const cspine_decode* decode = nullptr) const;

  // Puts a volume (int16 HU, slices x rows x cols) on this model's device, for segment_volume and
  // classify_crops of any model on the same device.
  DeviceVolume upload(const int16_t* hu, int64_t slices, int64_t rows, int64_t cols) const;

  // Segments a whole volume with the contract's window, size and slice offsets, preprocessing on the model's
  // device: labels receives slices x height x width argmax labels, in one transfer. Returns the model's class
  // count; adds the forward passes' time to *model_seconds. Throws ModelError, or InterruptedError when an
  // interrupt arrives between batches.
  int64_t segment_volume(const DeviceVolume& volume, const ModelContract& contract, int batch, uint8_t* labels,
                         double* model_seconds) const;

  // Runs the model on the crops of `request` built on the device (the input never crosses to the host);
  // outputs as forward(). Adds the forward pass's time to *model_seconds.
  std::vector<HostTensor> classify_crops(const DeviceVolume& volume, const CropRequest& request,
                                         double* model_seconds) const;

private:
  std::string path_;
  void* handle_ = nullptr;
};

}  // namespace cspine
