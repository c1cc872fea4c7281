#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>

#include "cspine/backend.h"
#include "cspine/error.h"
#include "util/interrupt.h"
#include "util/log.h"

namespace fs = std::filesystem;

namespace cspine {

namespace {

constexpr const char* kPluginName = "libcspine_torch.so";

std::string exe_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

std::vector<std::string> candidates() {
  std::vector<std::string> c;
  if (const char* env = std::getenv("CSPINE_TORCH_BACKEND"); env && *env) c.emplace_back(env);
  const std::string dir = exe_dir();
  if (!dir.empty()) {
    c.push_back(dir + "/" + kPluginName);
    c.push_back(dir + "/../lib/cspine/" + kPluginName);
  }
#ifdef CSPINE_BUILD_PLUGIN_DIR
  c.push_back(std::string(CSPINE_BUILD_PLUGIN_DIR) + "/" + kPluginName);
#endif
  return c;
}

struct Plugin {
  void* handle = nullptr;
  std::string path;
  std::string error;
};

Plugin& plugin() {
  static Plugin p;
  static std::once_flag once;
  std::call_once(once, [] {
    const std::string found = find_backend_plugin();
    if (found.empty()) {
      std::string tried;
      for (const auto& c : candidates()) tried += " " + c;
      p.error = "the model backend " + std::string(kPluginName) + " was not found (looked at:" + tried +
                "); build cspine with CSPINE_WITH_TORCH=ON or set CSPINE_TORCH_BACKEND";
      return;
    }
    p.handle = ::dlopen(found.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!p.handle) {
      p.error = "cannot load the model backend '" + found + "': " + ::dlerror();
      return;
    }
    auto abi = reinterpret_cast<decltype(&cspine_backend_abi_version)>(::dlsym(p.handle, "cspine_backend_abi_version"));
    if (!abi || abi() != kBackendAbiVersion) {
      p.error = "'" + found + "' is a model backend for another version of cspine (ABI " +
                (abi ? std::to_string(abi()) : std::string("unknown")) + ", need " +
                std::to_string(kBackendAbiVersion) + ")";
      ::dlclose(p.handle);
      p.handle = nullptr;
      return;
    }
    p.path = found;
    CSPINE_DEBUG("loaded model backend {}", found);
  });
  return p;
}

// The plugin's function `name`, typed by its declaration in backend_abi.h: CSPINE_SYMBOL(f) has exactly f's type,
// so a call with other arguments than the header declares does not compile.
template <typename Fn>
Fn symbol(const char* name) {
  Plugin& p = plugin();
  if (!p.handle) throw Error(ExitCode::internal, p.error);
  auto f = reinterpret_cast<Fn>(::dlsym(p.handle, name));
  if (!f) throw Error(ExitCode::internal, "'" + p.path + "' has no " + name + " entry point");
  return f;
}
#define CSPINE_SYMBOL(fn) symbol<decltype(&fn)>(#fn)

}  // namespace

bool read_model_extra(const std::string& model_path, const std::string& name, std::string& out) {
  auto read = CSPINE_SYMBOL(cspine_backend_read_extra);
  auto release = CSPINE_SYMBOL(cspine_backend_free);
  char* data = nullptr;
  size_t size = 0;
  char err[512] = {0};
  const cspine_status rc = read(model_path.c_str(), name.c_str(), &data, &size, err, sizeof err);
  if (rc == CSPINE_ABSENT) return false;
  if (rc != CSPINE_OK) throw ModelError("'" + model_path + "' is not a TorchScript model: " + err);
  out.assign(data, size);
  release(data);
  return true;
}

void set_backend_threads(int threads) {
  if (threads <= 0) return;
  CSPINE_SYMBOL(cspine_backend_set_threads)(threads);
}

int64_t HostTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

int cancelled_by_signal() {
  return interrupted() ? 1 : 0;
}

// Output buffers handed over by the plugin -> HostTensors (and the buffers released).
std::vector<HostTensor> take_outputs(cspine_tensor* outs, int n) {
  static const auto release = CSPINE_SYMBOL(cspine_backend_free);
  std::vector<HostTensor> result(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    HostTensor& t = result[static_cast<std::size_t>(i)];
    t.shape.assign(outs[i].shape, outs[i].shape + outs[i].ndim);
    t.channels = outs[i].channels;
    const auto count = static_cast<std::size_t>(t.numel());
    if (outs[i].dtype == 1) {
      const auto* p = static_cast<const uint8_t*>(outs[i].data);
      t.labels.assign(p, p + count);
    } else {
      const auto* p = static_cast<const float*>(outs[i].data);
      t.values.assign(p, p + count);
    }
    release(outs[i].data);
  }
  return result;
}

// A CropRequest as it crosses to the plugin (after checking its buffers match its counts).
cspine_crops crops_of(const CropRequest& r) {
  if (r.items < 0 || r.boxes.size() != static_cast<std::size_t>(r.items) * 3 ||
      r.indices.size() != static_cast<std::size_t>(r.items * r.slices_per_item * r.channels) || r.channels < 1 ||
      r.channels > CSPINE_MAX_SLICE_OFFSETS)
    throw Error(ExitCode::internal, "crop request: boxes or indices do not match the item count");
  cspine_crops c{};
  c.rules.hu_low = r.hu_low;
  c.rules.hu_high = r.hu_high;
  c.rules.n_offsets = static_cast<int32_t>(r.channels);
  c.rules.height = r.height;
  c.rules.width = r.width;
  c.boxes = r.boxes.data();
  c.indices = r.indices.data();
  c.items = r.items;
  c.slices_per_item = r.slices_per_item;
  return c;
}

}  // namespace

TorchModel::TorchModel(const std::string& path, const std::string& device, bool fp16, bool exact_numerics)
    : path_(path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw ModelError("model file '" + path + "' does not exist");
  auto load = CSPINE_SYMBOL(cspine_backend_model_load);
  cspine_status status = CSPINE_OK;
  char err[1024] = {0};
  handle_ = load(path.c_str(), device.c_str(), fp16 ? 1 : 0, exact_numerics ? 1 : 0, &status, err, sizeof err);
  if (!handle_) {
    if (status == CSPINE_BAD_DEVICE) throw DeviceError(err);
    throw ModelError("cannot load model '" + path + "': " + err);
  }
}

TorchModel::~TorchModel() {
  if (handle_) CSPINE_SYMBOL(cspine_backend_model_free)(handle_);
}

std::string TorchModel::device() const {
  return CSPINE_SYMBOL(cspine_backend_model_device)(handle_);
}

std::vector<HostTensor> TorchModel::forward(const float* input, const std::vector<int64_t>& shape,
                                            const cspine_decode* decode) const {
  static const auto run = CSPINE_SYMBOL(cspine_backend_model_forward);
  constexpr int kMaxOutputs = CSPINE_MAX_OUTPUTS;
  cspine_tensor outs[kMaxOutputs] = {};
  int n = 0;
  char err[1024] = {0};
  if (run(handle_, input, shape.data(), static_cast<int>(shape.size()), decode, outs, kMaxOutputs, &n,
          err, sizeof err) != CSPINE_OK) {
    std::string dims;
    for (int64_t d : shape) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
    throw ModelError("model '" + path_ + "' failed on an input of shape [" + dims + "]: " + err);
  }
  return take_outputs(outs, n);
}

DeviceVolume::~DeviceVolume() {
  if (handle_) CSPINE_SYMBOL(cspine_backend_volume_free)(handle_);
}

DeviceVolume& DeviceVolume::operator=(DeviceVolume&& o) noexcept {
  if (this != &o) {
    if (handle_) CSPINE_SYMBOL(cspine_backend_volume_free)(handle_);
    handle_ = o.handle_;
    o.handle_ = nullptr;
  }
  return *this;
}

DeviceVolume TorchModel::upload(const int16_t* hu, int64_t slices, int64_t rows, int64_t cols) const {
  static const auto run = CSPINE_SYMBOL(cspine_backend_volume_upload);
  char err[1024] = {0};
  DeviceVolume v;
  v.handle_ = run(handle_, hu, slices, rows, cols, err, sizeof err);
  if (!v.handle_)
    throw Error(ExitCode::internal, "cannot put a volume of " + std::to_string(slices) + " x " + std::to_string(rows) +
                                        " x " + std::to_string(cols) + " on " + device() + ": " + err);
  return v;
}

int64_t TorchModel::segment_volume(const DeviceVolume& volume, const ModelContract& contract, int batch,
                                   uint8_t* labels, double* model_seconds) const {
  static const auto run = CSPINE_SYMBOL(cspine_backend_segment_volume);
  const cspine_input_rules rules = input_rules(contract);
  int64_t channels = 0;
  double seconds = 0;
  char err[1024] = {0};
  const cspine_status rc = run(handle_, volume.handle_, &rules, batch, labels, &channels, &seconds,
                               cancelled_by_signal, err, sizeof err);
  if (model_seconds) *model_seconds += seconds;
  if (rc == CSPINE_CANCELLED) throw_if_interrupted();
  if (rc != CSPINE_OK) throw ModelError("model '" + path_ + "' failed on a study's volume: " + err);
  return channels;
}

std::vector<HostTensor> TorchModel::classify_crops(const DeviceVolume& volume, const CropRequest& r,
                                                   double* model_seconds) const {
  static const auto run = CSPINE_SYMBOL(cspine_backend_classify_volume);
  const cspine_crops crops = crops_of(r);
  cspine_tensor outs[CSPINE_MAX_OUTPUTS] = {};
  int n = 0;
  double seconds = 0;
  char err[1024] = {0};
  if (run(handle_, volume.handle_, &crops, outs, CSPINE_MAX_OUTPUTS, &n, &seconds, err, sizeof err) != CSPINE_OK)
    throw ModelError("model '" + path_ + "' failed on the crops of " + std::to_string(r.items) + " vertebrae: " + err);
  if (model_seconds) *model_seconds += seconds;
  return take_outputs(outs, n);
}

std::vector<float> device_crops(const DeviceVolume& volume, const CropRequest& r) {
  static const auto run = CSPINE_SYMBOL(cspine_backend_volume_crops);
  const cspine_crops crops = crops_of(r);
  std::vector<float> out(static_cast<std::size_t>(r.items * r.slices_per_item * r.channels * r.height * r.width));
  char err[1024] = {0};
  if (run(volume.handle_, &crops, out.data(), err, sizeof err) != CSPINE_OK)
    throw Error(ExitCode::internal, std::string("building crops on the device failed: ") + err);
  return out;
}

std::string find_backend_plugin() {
  for (const auto& c : candidates()) {
    std::error_code ec;
    if (fs::is_regular_file(c, ec)) return fs::weakly_canonical(c, ec).string();
  }
  return {};
}

std::string backend_info() {
  Plugin& p = plugin();
  if (!p.handle) throw Error(ExitCode::internal, p.error);
  auto info = reinterpret_cast<decltype(&cspine_backend_info)>(::dlsym(p.handle, "cspine_backend_info"));
  if (!info) throw Error(ExitCode::internal, "'" + p.path + "' has no cspine_backend_info entry point");
  return std::string(info()) + " [" + p.path + "]";
}

}  // namespace cspine
