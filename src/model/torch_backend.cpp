// The LibTorch model backend plugin (libcspine_torch.so). Everything that includes LibTorch headers is
// compiled into this module, never into cspine_core, so only commands that run models pay for loading it.
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/cuda.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/script.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "cspine/backend.h"

extern "C" const char* cspine_backend_info();

namespace {

void set_error(char* err, size_t err_size, const std::string& what) {
  if (!err || !err_size) return;
  std::strncpy(err, what.c_str(), err_size - 1);
  err[err_size - 1] = 0;
  if (char* nl = std::strchr(err, '\n')) *nl = 0;  // c10 messages append a backtrace after the first line
}

struct Model {
  torch::jit::Module module;
  torch::Device device{torch::kCPU};
  bool half = false;
  std::string device_name;
};

// "auto", "cpu", "cuda" or "cuda:N" -> a device this LibTorch can use; throws std::invalid_argument otherwise.
torch::Device resolve_device(const std::string& spec) {
  const bool cuda = torch::cuda::is_available();
  if (spec == "auto") return cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (spec == "cpu") return torch::Device(torch::kCPU);
  if (spec.rfind("cuda", 0) == 0) {
    if (!cuda)
      throw std::invalid_argument("--device " + spec + ": CUDA is not available to this model backend (" +
                                  std::string(cspine_backend_info()) +
                                  "); build the backend against a CUDA LibTorch (README: GPU build) or use --device cpu");
    int index = 0;
    if (spec.size() > 4) {
      if (spec[4] != ':' || spec.size() == 5 || spec.find_first_not_of("0123456789", 5) != std::string::npos)
        throw std::invalid_argument("--device '" + spec + "': expected cuda or cuda:N");
      index = std::stoi(spec.substr(5));
    }
    const int count = static_cast<int>(torch::cuda::device_count());
    if (index >= count)
      throw std::invalid_argument("--device " + spec + ": only " + std::to_string(count) + " CUDA device(s)");
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw std::invalid_argument("--device '" + spec + "': expected auto, cpu, cuda or cuda:N");
}

}  // namespace

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
    set_error(err, err_size, e.what());
    return 2;
  }
}

__attribute__((visibility("default"))) void cspine_backend_set_threads(int threads) {
  if (threads > 0) at::set_num_threads(threads);
}

// Loads a TorchScript model onto a device. Returns a handle, or null with *status = 1 (the file is not a
// loadable model) or 2 (the device cannot be used: no CUDA, bad index, fp16 on the CPU), reason in `err`.
__attribute__((visibility("default"))) void* cspine_backend_model_load(const char* path, const char* device, int fp16,
                                                                       int* status, char* err, size_t err_size) {
  *status = 0;
  torch::Device dev{torch::kCPU};
  try {
    dev = resolve_device(device);
    if (fp16 && !dev.is_cuda())
      throw std::invalid_argument("--fp16 needs a CUDA device (this run uses " + dev.str() + ")");
  } catch (const std::exception& e) {
    set_error(err, err_size, e.what());
    *status = 2;
    return nullptr;
  }
  try {
    auto m = std::make_unique<Model>();
    m->module = torch::jit::load(std::string(path), dev);
    m->module.eval();
    if (fp16) m->module.to(torch::kHalf);
    // Freezing inlines the weights and folds batch norms into the convolutions (torch.jit.freeze): on the CPU
    // the segmentation model runs about 1.4x faster, and 4-D inputs in channels-last memory order gain more.
    // A model that cannot be frozen still runs as it is. CSPINE_NO_FREEZE=1 / CSPINE_NO_CHANNELS_LAST=1 turn
    // these off (bench/pipeline.sh measures what each brings).
    if (std::getenv("CSPINE_NO_FREEZE") == nullptr) {
      try {
        m->module = torch::jit::freeze(m->module);
      } catch (const std::exception&) {
      }
    }
    // In fp32, CUDA computes in full fp32 (no TF32 shortcuts), so results match the CPU's within the stated
    // tolerance; --fp16 is the fast mode.
    if (dev.is_cuda() && !fp16) {
      at::globalContext().setAllowTF32CuDNN(false);
      at::globalContext().setAllowTF32CuBLAS(false);
    }
    m->device = dev;
    m->half = fp16 != 0;
    m->device_name = dev.str();
    return m.release();
  } catch (const std::exception& e) {
    set_error(err, err_size, e.what());
    *status = 1;
    return nullptr;
  }
}

__attribute__((visibility("default"))) const char* cspine_backend_model_device(void* handle) {
  return static_cast<Model*>(handle)->device_name.c_str();
}

__attribute__((visibility("default"))) void cspine_backend_model_free(void* handle) {
  delete static_cast<Model*>(handle);
}

// Runs the model on one float32 input (host memory, C order). Every tensor the model returns (a tensor, or a
// tuple/list of tensors) comes back as a host float32 buffer in `outs` (malloc'ed; release each `data` with
// cspine_backend_free); with `argmax_first`, output 0 is replaced by its argmax over dimension 1 as uint8 and
// `channels` keeps the size of that dimension. Returns 0, or 1 with the reason in `err`.
__attribute__((visibility("default"))) int cspine_backend_model_forward(void* handle, const float* input,
                                                                        const int64_t* shape, int ndim,
                                                                        int argmax_first, cspine_tensor* outs,
                                                                        int max_outs, int* n_outs, char* err,
                                                                        size_t err_size) {
  *n_outs = 0;
  try {
    Model& m = *static_cast<Model*>(handle);
    c10::InferenceMode guard;
    auto x = torch::from_blob(const_cast<float*>(input), std::vector<int64_t>(shape, shape + ndim), torch::kFloat32);
    x = x.to(m.device, m.half ? torch::kHalf : torch::kFloat32);
    if (x.dim() == 4 && std::getenv("CSPINE_NO_CHANNELS_LAST") == nullptr) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    const c10::IValue out = m.module.forward({x});
    std::vector<torch::Tensor> tensors;
    if (out.isTensor()) {
      tensors.push_back(out.toTensor());
    } else if (out.isTuple()) {
      for (const auto& e : out.toTupleRef().elements()) {
        if (!e.isTensor()) throw std::runtime_error("the model returned a tuple holding something other than tensors");
        tensors.push_back(e.toTensor());
      }
    } else if (out.isTensorList()) {
      for (const auto& t : out.toTensorVector()) tensors.push_back(t);
    } else {
      throw std::runtime_error("the model returned " + out.tagKind() + ", expected a tensor or a tuple of tensors");
    }
    if (static_cast<int>(tensors.size()) > max_outs)
      throw std::runtime_error("the model returned " + std::to_string(tensors.size()) + " outputs, at most " +
                               std::to_string(max_outs) + " are read");
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      torch::Tensor t = tensors[i];
      cspine_tensor& o = outs[i];
      o.channels = t.dim() > 1 ? t.size(1) : 0;
      if (i == 0 && argmax_first) {
        if (t.dim() < 2) throw std::runtime_error("output 0 has " + std::to_string(t.dim()) + " dimension(s), expected [N, classes, ...]");
        t = t.argmax(1).to(torch::kUInt8);
        o.dtype = 1;
      } else {
        t = t.to(torch::kFloat32);
        o.dtype = 0;
      }
      t = t.to(torch::kCPU).contiguous();
      if (t.dim() > 8) throw std::runtime_error("an output has more than 8 dimensions");
      o.ndim = static_cast<int32_t>(t.dim());
      for (int d = 0; d < t.dim(); ++d) o.shape[d] = t.size(d);
      const std::size_t bytes = static_cast<std::size_t>(t.numel()) * t.element_size();
      o.data = std::malloc(bytes ? bytes : 1);
      if (!o.data) throw std::bad_alloc();
      std::memcpy(o.data, t.data_ptr(), bytes);
      *n_outs = static_cast<int>(i) + 1;
    }
    return 0;
  } catch (const std::exception& e) {
    for (int i = 0; i < *n_outs; ++i) std::free(outs[i].data);
    *n_outs = 0;
    set_error(err, err_size, e.what());
    return 1;
  }
}

__attribute__((visibility("default"))) void cspine_backend_free(void* p) {
  std::free(p);
}

// Segments a whole volume on the model's device: the int16 volume crosses over once, windowing, the bilinear
// resize and the 2.5D stacking run there as LibTorch ops, and only the argmax labels come back
// (slices x height x width uint8 into `labels`). `channels` receives the model's class count; `model_seconds`
// the time spent in the forward passes. `cancelled` is polled between batches. Returns 0, 1 with the reason in
// `err`, or 3 when cancelled.
__attribute__((visibility("default"))) int cspine_backend_segment_volume(
    void* handle, const int16_t* hu, int64_t slices, int64_t rows, int64_t cols, double hu_low, double hu_high,
    const int32_t* offsets, int32_t n_offsets, int64_t height, int64_t width, int32_t batch, uint8_t* labels,
    int64_t* channels, double* model_seconds, int (*cancelled)(void), char* err, size_t err_size) {
  namespace F = torch::nn::functional;
  try {
    Model& m = *static_cast<Model*>(handle);
    c10::InferenceMode guard;
    const auto host = torch::from_blob(const_cast<int16_t*>(hu), {slices, rows, cols}, torch::kInt16);
    const torch::Tensor vol = host.to(m.device);  // one transfer, as int16
    const float lo = static_cast<float>(hu_low), range = static_cast<float>(hu_high) - static_cast<float>(hu_low);
    auto resized = torch::empty({slices, height, width}, torch::TensorOptions().dtype(torch::kFloat32).device(m.device));
    constexpr int64_t kChunk = 64;  // slices windowed and resized at a time (bounds the float copy)
    for (int64_t s0 = 0; s0 < slices; s0 += kChunk) {
      const int64_t s1 = std::min(slices, s0 + kChunk);
      auto x = ((vol.slice(0, s0, s1).to(torch::kFloat32) - lo) / range).clamp(0.0, 1.0);
      if (rows != height || cols != width)
        x = F::interpolate(x.unsqueeze(1), F::InterpolateFuncOptions()
                                               .size(std::vector<int64_t>{height, width})
                                               .mode(torch::kBilinear)
                                               .align_corners(false))
                .squeeze(1);
      resized.slice(0, s0, s1).copy_(x);
    }
    std::vector<int64_t> idx;
    *channels = 0;
    *model_seconds = 0;
    for (int64_t s0 = 0; s0 < slices; s0 += batch) {
      if (cancelled && cancelled()) return 3;
      const int64_t n = std::min<int64_t>(batch, slices - s0);
      idx.clear();
      for (int64_t k = s0; k < s0 + n; ++k)
        for (int32_t c = 0; c < n_offsets; ++c) idx.push_back(std::clamp<int64_t>(k + offsets[c], 0, slices - 1));
      const auto index = torch::from_blob(idx.data(), {static_cast<int64_t>(idx.size())}, torch::kInt64).to(m.device);
      auto x = resized.index_select(0, index).view({n, n_offsets, height, width});
      if (m.half) x = x.to(torch::kHalf);
      if (std::getenv("CSPINE_NO_CHANNELS_LAST") == nullptr) x = x.contiguous(at::MemoryFormat::ChannelsLast);
      const auto t0 = std::chrono::steady_clock::now();
      const c10::IValue out = m.module.forward({x});
      torch::Tensor logits;
      if (out.isTensor()) logits = out.toTensor();
      else if (out.isTuple() && !out.toTupleRef().elements().empty() && out.toTupleRef().elements()[0].isTensor())
        logits = out.toTupleRef().elements()[0].toTensor();
      else throw std::runtime_error("the segmentation model did not return a tensor");
      if (logits.dim() != 4 || logits.size(0) != n || logits.size(2) != height || logits.size(3) != width)
        throw std::runtime_error("the segmentation model returned logits of shape " + c10::str(logits.sizes()) +
                                 ", expected [" + std::to_string(n) + ", classes, " + std::to_string(height) + ", " +
                                 std::to_string(width) + "]");
      *channels = logits.size(1);
      const auto lab = logits.argmax(1).to(torch::kUInt8).to(torch::kCPU).contiguous();
      *model_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::memcpy(labels + s0 * height * width, lab.data_ptr(), static_cast<std::size_t>(lab.numel()));
    }
    return 0;
  } catch (const std::exception& e) {
    set_error(err, err_size, e.what());
    return 1;
  }
}

}  // extern "C"
