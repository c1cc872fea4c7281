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
#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <string>

#include "cspine/backend_abi.h"

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
  bool exact = false;  // exact_numerics: no batch-norm folding, no channels-last reordering
  std::string device_name;
};

// "auto", "cpu", "cuda" or "cuda:N" -> a device this LibTorch can use; throws std::invalid_argument otherwise.
// Messages name the device, never a command-line flag: the CLI says which option it came from.
torch::Device resolve_device(const std::string& spec) {
  const bool cuda = torch::cuda::is_available();
  if (spec == "auto") return cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (spec == "cpu") return torch::Device(torch::kCPU);
  if (spec.rfind("cuda", 0) == 0) {
    if (!cuda)
      throw std::invalid_argument("device " + spec + ": CUDA is not available to this model backend (" +
                                  std::string(cspine_backend_info()) +
                                  "); build the backend against a CUDA LibTorch (docs/building.md) or use the CPU");
    int index = 0;
    if (spec.size() > 4) {
      if (spec[4] != ':' || spec.size() == 5 || spec.find_first_not_of("0123456789", 5) != std::string::npos)
        throw std::invalid_argument("device '" + spec + "': expected cuda or cuda:N");
      index = std::stoi(spec.substr(5));
    }
    const int count = static_cast<int>(torch::cuda::device_count());
    if (index >= count)
      throw std::invalid_argument("device " + spec + ": only " + std::to_string(count) + " CUDA device(s)");
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw std::invalid_argument("device '" + spec + "': expected auto, cpu, cuda or cuda:N");
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int cspine_backend_abi_version() {
  return CSPINE_BACKEND_ABI_VERSION;
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
// cspine_backend_free). The statuses are those of include/cspine/backend_abi.h.
__attribute__((visibility("default"))) cspine_status cspine_backend_read_extra(const char* path, const char* name,
                                                                               char** data, size_t* size, char* err,
                                                                               size_t err_size) {
  *data = nullptr;
  *size = 0;
  try {
    caffe2::serialize::PyTorchStreamReader reader{std::string(path)};
    const std::string record = std::string("extra/") + name;
    if (!reader.hasRecord(record)) return CSPINE_ABSENT;
    auto [ptr, n] = reader.getRecord(record);
    char* buf = static_cast<char*>(std::malloc(n + 1));
    if (!buf) return CSPINE_MODEL_FAILED;
    std::memcpy(buf, ptr.get(), n);
    buf[n] = 0;
    *data = buf;
    *size = n;
    return CSPINE_OK;
  } catch (const std::exception& e) {
    set_error(err, err_size, e.what());
    return CSPINE_BAD_MODEL_FILE;
  }
}

__attribute__((visibility("default"))) void cspine_backend_set_threads(int threads) {
  if (threads > 0) at::set_num_threads(threads);
}

// Loads a TorchScript model onto a device. Returns a handle, or null with *status CSPINE_BAD_MODEL_FILE (the
// file is not a loadable model) or CSPINE_BAD_DEVICE (no CUDA, bad index, fp16 on the CPU), reason in `err`.
__attribute__((visibility("default"))) void* cspine_backend_model_load(const char* path, const char* device, int fp16,
                                                                       int exact_numerics, cspine_status* status,
                                                                       char* err, size_t err_size) {
  *status = CSPINE_OK;
  torch::Device dev{torch::kCPU};
  try {
    dev = resolve_device(device);
    if (fp16 && !dev.is_cuda())
      throw std::invalid_argument("half precision (fp16) needs a CUDA device (this run uses " + dev.str() + ")");
  } catch (const std::exception& e) {
    set_error(err, err_size, e.what());
    *status = CSPINE_BAD_DEVICE;
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
    // these off (bench/pipeline.sh measures what each brings). With exact_numerics the passes that change results
    // (folding batch norms, additions and scalings into convolutions) are left out: measured on the RSNA 2022
    // classifiers with calibrated random weights, folding moved logits by up to 0.035. Channels-last inputs
    // (below) are left out too: they change the convolutions' summation order, which flipped a near-tie label.
    if (std::getenv("CSPINE_NO_FREEZE") == nullptr) {
      try {
        m->module = torch::jit::freeze(m->module, c10::nullopt, /*optimize_numerics=*/exact_numerics == 0);
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
    m->exact = exact_numerics != 0;
    m->device_name = dev.str();
    return m.release();
  } catch (const std::exception& e) {
    set_error(err, err_size, e.what());
    *status = CSPINE_BAD_MODEL_FILE;
    return nullptr;
  }
}

__attribute__((visibility("default"))) const char* cspine_backend_model_device(void* handle) {
  return static_cast<Model*>(handle)->device_name.c_str();
}

__attribute__((visibility("default"))) void cspine_backend_model_free(void* handle) {
  delete static_cast<Model*>(handle);
}

namespace {

// Copies what a model returned (a tensor, or a tuple/list of tensors) into host buffers `outs` (malloc'ed);
// with a `decode`, output 0 becomes uint8 channel indices over dimension 1 (argmax, or the sigmoid rule of
// include/cspine/backend_abi.h, with the ops of the RSNA 2022 notebook: sigmoid, max, > threshold). Throws on
// anything else.
void export_outputs(const c10::IValue& out, const cspine_decode* decode, cspine_tensor* outs, int max_outs, int* n_outs) {
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
    if (i == 0 && decode) {
      if (t.dim() < 2) throw std::runtime_error("output 0 has " + std::to_string(t.dim()) + " dimension(s), expected [N, classes, ...]");
      if (t.size(1) > CSPINE_NO_LABEL)
        throw std::runtime_error("output 0 has " + std::to_string(t.size(1)) + " channels, at most 255 are decoded");
      if (decode->mode == CSPINE_DECODE_SIGMOID) {
        const auto best = torch::max(t.to(torch::kFloat32).sigmoid(), 1);
        t = torch::where(std::get<0>(best) > decode->threshold, std::get<1>(best),
                         torch::full({}, CSPINE_NO_LABEL, std::get<1>(best).options()))
                .to(torch::kUInt8);
      } else {
        t = t.argmax(1).to(torch::kUInt8);
      }
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
}

bool channels_last() {
  return std::getenv("CSPINE_NO_CHANNELS_LAST") == nullptr;
}

// A study's int16 HU volume (slices x rows x cols) on a model's device. On the CPU it borrows the caller's
// memory (no copy); on CUDA it is a device copy.
struct VolumeOnDevice {
  torch::Tensor hu;
};

// Host -> CUDA through page-locked memory: two reusable pinned staging buffers; chunk i is memcpy'd into buffer
// i % 2 and sent with an asynchronous copy, so the memcpy of one chunk overlaps the transfer of the previous
// one, and no pageable-memory copy (the driver's own bounce buffer) is involved. The buffers are kept for the
// next study (allocating page-locked memory is slow) and never freed (CUDA may be shut down before static
// destructors run).
torch::Tensor upload_pinned(const int16_t* hu, int64_t slices, int64_t rows, int64_t cols, torch::Device dev) {
  static std::mutex mutex;
  static auto* stage = new std::array<torch::Tensor, 2>();
  constexpr int64_t kStageBytes = 32 << 20;
  std::lock_guard<std::mutex> lock(mutex);
  const int64_t plane = rows * cols;
  const int64_t per = std::max<int64_t>(1, kStageBytes / (plane * 2));
  for (auto& b : *stage)
    if (!b.defined() || b.numel() < per * plane)
      b = torch::empty({per * plane}, torch::TensorOptions().dtype(torch::kInt16).pinned_memory(true));
  auto out = torch::empty({slices, rows, cols}, torch::TensorOptions().dtype(torch::kInt16).device(dev));
  int64_t chunk = 0;
  for (int64_t s0 = 0; s0 < slices; s0 += per, ++chunk) {
    const int64_t n = std::min(per, slices - s0);
    // Before buffer 0 is reused, both earlier copies (out of buffers 0 and 1) have finished.
    if (chunk % 2 == 0 && chunk > 0) torch::cuda::synchronize(dev.index());
    torch::Tensor& b = (*stage)[static_cast<std::size_t>(chunk % 2)];
    std::memcpy(b.data_ptr(), hu + s0 * plane, static_cast<std::size_t>(n * plane) * sizeof(int16_t));
    out.slice(0, s0, s0 + n).copy_(b.slice(0, 0, n * plane).view({n, rows, cols}), /*non_blocking=*/true);
  }
  torch::cuda::synchronize(dev.index());  // the staging buffers are free again for the next upload
  return out;
}

// The classifier's input for `n` items (vertebrae) built on the volume's device, [n, nsl, ch, height, width]:
// item i is the square crop boxes[3i..3i+2] = (x, y, side) of the slices indices[i * nsl * ch ...], windowed
// inside the image (0 outside it) and resized bilinearly (align_corners=False); side 0 leaves the item zeros.
// The same rule as vertebra_input in src/pipeline/preprocess.cpp (tested against it).
torch::Tensor build_crops(const torch::Tensor& vol, const cspine_crops& c) {
  namespace F = torch::nn::functional;
  const double hu_low = c.rules.hu_low, hu_high = c.rules.hu_high;
  const int32_t *boxes = c.boxes, *indices = c.indices;
  const int64_t n = c.items, nsl = c.slices_per_item, ch = c.rules.n_offsets, height = c.rules.height,
                width = c.rules.width;
  if (n < 0 || nsl < 1 || ch < 1 || height < 1 || width < 1) throw std::runtime_error("invalid crop request");
  const auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(vol.device());
  const float lo = static_cast<float>(hu_low), range = static_cast<float>(hu_high) - static_cast<float>(hu_low);
  const int64_t slices = vol.size(0), rows = vol.size(1), cols = vol.size(2), per = nsl * ch;
  auto x = torch::zeros({n, per, height, width}, opts);
  std::vector<int64_t> idx(indices, indices + n * per);
  for (int64_t k : idx)
    if (k < 0 || k >= slices) throw std::runtime_error("crop slice index " + std::to_string(k) + " outside the volume");
  const auto all = torch::from_blob(idx.data(), {n * per}, torch::kInt64).to(vol.device());  // one transfer
  for (int64_t i = 0; i < n; ++i) {
    const int64_t bx = boxes[3 * i], by = boxes[3 * i + 1], side = boxes[3 * i + 2];
    if (side <= 0) continue;
    const auto index = all.slice(0, i * per, (i + 1) * per);
    auto crop = torch::zeros({per, side, side}, opts);
    const int64_t x0 = std::max<int64_t>(bx, 0), x1 = std::min(bx + side, cols);
    const int64_t y0 = std::max<int64_t>(by, 0), y1 = std::min(by + side, rows);
    if (x0 < x1 && y0 < y1) {
      const auto sub = vol.slice(1, y0, y1).slice(2, x0, x1).index_select(0, index);
      crop.slice(1, y0 - by, y1 - by).slice(2, x0 - bx, x1 - bx).copy_(((sub.to(torch::kFloat32) - lo) / range).clamp(0.0, 1.0));
    }
    if (side != height || side != width)
      crop = F::interpolate(crop.unsqueeze(0), F::InterpolateFuncOptions()
                                                   .size(std::vector<int64_t>{height, width})
                                                   .mode(torch::kBilinear)
                                                   .align_corners(false))
                 .squeeze(0);
    x[i].copy_(crop);
  }
  return x.view({n, nsl, ch, height, width});
}

}  // namespace

// Runs the model on one float32 input (host memory, C order). Every tensor the model returns (a tensor, or a
// tuple/list of tensors) comes back as a host float32 buffer in `outs` (malloc'ed; release each `data` with
// cspine_backend_free); with `argmax_first`, output 0 is replaced by its argmax over dimension 1 as uint8 and
// `channels` keeps the size of that dimension. Returns CSPINE_OK, or CSPINE_MODEL_FAILED with the reason in `err`.
__attribute__((visibility("default"))) cspine_status cspine_backend_model_forward(void* handle, const float* input,
                                                                        const int64_t* shape, int ndim,
                                                                        const cspine_decode* decode, cspine_tensor* outs,
                                                                        int max_outs, int* n_outs, char* err,
                                                                        size_t err_size) {
  *n_outs = 0;
  try {
    Model& m = *static_cast<Model*>(handle);
    c10::InferenceMode guard;
    auto x = torch::from_blob(const_cast<float*>(input), std::vector<int64_t>(shape, shape + ndim), torch::kFloat32);
    x = x.to(m.device, m.half ? torch::kHalf : torch::kFloat32);
    if (x.dim() == 4 && channels_last() && !m.exact) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    export_outputs(m.module.forward({x}), decode, outs, max_outs, n_outs);
    return CSPINE_OK;
  } catch (const std::exception& e) {
    for (int i = 0; i < *n_outs; ++i) std::free(outs[i].data);
    *n_outs = 0;
    set_error(err, err_size, e.what());
    return CSPINE_MODEL_FAILED;
  }
}

__attribute__((visibility("default"))) void cspine_backend_free(void* p) {
  std::free(p);
}

// Puts a study's int16 HU volume (slices x rows x cols, C order) on the model's device, once per study: on
// CUDA through pinned staging buffers, on the CPU by reference (the caller keeps `hu` alive as long as the
// handle). Returns a handle (release with cspine_backend_volume_free), or null with the reason in `err`.
__attribute__((visibility("default"))) void* cspine_backend_volume_upload(void* model, const int16_t* hu,
                                                                          int64_t slices, int64_t rows, int64_t cols,
                                                                          char* err, size_t err_size) {
  try {
    const Model& m = *static_cast<Model*>(model);
    c10::InferenceMode guard;
    auto v = std::make_unique<VolumeOnDevice>();
    if (m.device.is_cuda()) v->hu = upload_pinned(hu, slices, rows, cols, m.device);
    else v->hu = torch::from_blob(const_cast<int16_t*>(hu), {slices, rows, cols}, torch::kInt16);
    return v.release();
  } catch (const std::exception& e) {
    set_error(err, err_size, e.what());
    return nullptr;
  }
}

__attribute__((visibility("default"))) void cspine_backend_volume_free(void* volume) {
  delete static_cast<VolumeOnDevice*>(volume);
}

namespace {
const torch::Tensor& volume_on(const void* volume, const Model& m) {
  const torch::Tensor& hu = static_cast<const VolumeOnDevice*>(volume)->hu;
  if (hu.device() != m.device)
    throw std::runtime_error("the volume is on " + hu.device().str() + ", the model on " + m.device.str());
  return hu;
}
}  // namespace

// Segments a whole volume on the model's device: windowing, the bilinear resize and the 2.5D stacking run
// there as LibTorch ops, the labels of every batch stay there, and they come back in one copy at the end
// (slices x height x width uint8 into `labels`). `channels` receives the model's class count; `model_seconds`
// the time of the batched forward passes (on CUDA up to the labels' copy, as the passes run asynchronously).
// `cancelled` is polled between batches. Returns CSPINE_OK, CSPINE_MODEL_FAILED with the reason in `err`, or
// CSPINE_CANCELLED.
__attribute__((visibility("default"))) cspine_status cspine_backend_segment_volume(
    void* handle, const void* volume, const cspine_input_rules* rules, int32_t batch, uint8_t* labels,
    int64_t* channels, double* model_seconds, int (*cancelled)(void), char* err, size_t err_size) {
  namespace F = torch::nn::functional;
  try {
    const double hu_low = rules->hu_low, hu_high = rules->hu_high;
    const int32_t* offsets = rules->slice_offsets;
    const int32_t n_offsets = rules->n_offsets;
    const int64_t height = rules->height, width = rules->width;
    if (n_offsets < 1 || n_offsets > CSPINE_MAX_SLICE_OFFSETS || height < 1 || width < 1 || batch < 1)
      throw std::runtime_error("invalid input rules (channels, size or batch)");
    Model& m = *static_cast<Model*>(handle);
    c10::InferenceMode guard;
    const torch::Tensor& vol = volume_on(volume, m);
    const int64_t slices = vol.size(0), rows = vol.size(1), cols = vol.size(2);
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
    auto out_labels = torch::empty({slices, height, width}, torch::TensorOptions().dtype(torch::kUInt8).device(m.device));
    std::vector<int64_t> idx;
    *channels = 0;
    *model_seconds = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t s0 = 0; s0 < slices; s0 += batch) {
      if (cancelled && cancelled()) return CSPINE_CANCELLED;
      const int64_t n = std::min<int64_t>(batch, slices - s0);
      idx.clear();
      for (int64_t k = s0; k < s0 + n; ++k)
        for (int32_t c = 0; c < n_offsets; ++c) idx.push_back(std::clamp<int64_t>(k + offsets[c], 0, slices - 1));
      const auto index = torch::from_blob(idx.data(), {static_cast<int64_t>(idx.size())}, torch::kInt64).to(m.device);
      auto x = resized.index_select(0, index).view({n, n_offsets, height, width});
      if (m.half) x = x.to(torch::kHalf);
      if (channels_last() && !m.exact) x = x.contiguous(at::MemoryFormat::ChannelsLast);
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
      out_labels.slice(0, s0, s0 + n).copy_(logits.argmax(1));
    }
    const auto host = torch::from_blob(labels, {slices, height, width}, torch::kUInt8);
    host.copy_(out_labels);  // one transfer back (synchronous)
    *model_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return CSPINE_OK;
  } catch (const std::exception& e) {
    set_error(err, err_size, e.what());
    return CSPINE_MODEL_FAILED;
  }
}

// The classifier's input built from a device volume (see build_crops above), copied to `out` (host,
// n x nsl x ch x height x width floats). For tests and tools; predict uses cspine_backend_classify_volume,
// which never brings it back. Returns 0, or 1 with the reason in `err`.
__attribute__((visibility("default"))) cspine_status cspine_backend_volume_crops(const void* volume,
                                                                                 const cspine_crops* crops, float* out,
                                                                                 char* err, size_t err_size) {
  try {
    c10::InferenceMode guard;
    const torch::Tensor& vol = static_cast<const VolumeOnDevice*>(volume)->hu;
    const auto x = build_crops(vol, *crops);
    torch::from_blob(out, x.sizes(), torch::kFloat32).copy_(x);
    return CSPINE_OK;
  } catch (const std::exception& e) {
    set_error(err, err_size, e.what());
    return CSPINE_MODEL_FAILED;
  }
}

// Runs a classifier on crops of a device volume (build_crops) without the input leaving the device; outputs
// come back as in cspine_backend_model_forward. `model_seconds` receives the forward pass's time including
// the outputs' copy. Returns 0, or 1 with the reason in `err`.
__attribute__((visibility("default"))) cspine_status cspine_backend_classify_volume(
    void* handle, const void* volume, const cspine_crops* crops, cspine_tensor* outs, int max_outs, int* n_outs,
    double* model_seconds, char* err, size_t err_size) {
  *n_outs = 0;
  try {
    Model& m = *static_cast<Model*>(handle);
    c10::InferenceMode guard;
    auto x = build_crops(volume_on(volume, m), *crops);
    if (m.half) x = x.to(torch::kHalf);
    const auto t0 = std::chrono::steady_clock::now();
    export_outputs(m.module.forward({x}), nullptr, outs, max_outs, n_outs);
    *model_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return CSPINE_OK;
  } catch (const std::exception& e) {
    for (int i = 0; i < *n_outs; ++i) std::free(outs[i].data);
    *n_outs = 0;
    set_error(err, err_size, e.what());
    return CSPINE_MODEL_FAILED;
  }
}

}  // extern "C"
