// One study through both models (see include/cspine/predict.h for the steps).
#include "cspine/predict.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "cspine/backend.h"
#include "cspine/error.h"
#include "cspine/volume.h"
#include "util/interrupt.h"
#include "util/parallel.h"
#include "util/log.h"

namespace cspine {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s;
  for (int64_t d : shape) s += (s.empty() ? "" : ", ") + std::to_string(d);
  return "[" + s + "]";
}

}  // namespace

double noisy_or(const std::array<double, 7>& p) {
  double keep = 1.0;
  for (double x : p) keep *= 1.0 - x;
  return 1.0 - keep;
}

const char* fallback_name(Fallback f) {
  switch (f) {
    case Fallback::none: return "";
    case Fallback::not_found: return "not-found";
    case Fallback::too_few_slices: return "too-few-slices";
  }
  return "";
}

CropRequest crop_request(const ModelContract& c, const std::vector<const VertebraExtent*>& items, int slices) {
  CropRequest r;
  r.hu_low = c.hu_low;
  r.hu_high = c.hu_high;
  r.items = static_cast<int64_t>(items.size());
  r.slices_per_item = c.slices_per_vertebra;
  r.channels = c.channels();
  r.height = c.height;
  r.width = c.width;
  for (const VertebraExtent* e : items) {
    if (!e) {  // zeros
      r.boxes.insert(r.boxes.end(), {0, 0, 0});
      r.indices.insert(r.indices.end(), static_cast<std::size_t>(r.slices_per_item * r.channels), 0);
      continue;
    }
    const CropBox b = crop_box(*e, c.crop_margin);
    r.boxes.insert(r.boxes.end(), {b.x, b.y, b.side});
    for (int k : select_slices(*e, c.slices_per_vertebra))
      for (int idx : triplet_indices(k, c.slice_offsets, slices)) r.indices.push_back(idx);
  }
  return r;
}

Predictor::Predictor(const PredictOptions& options) : options_(options) {
  seg_contract_ = read_model_contract(options.seg_model);
  cls_contract_ = read_model_contract(options.cls_model);
  if (seg_contract_.kind != ModelKind::segmentation)
    throw ModelError("'" + options.seg_model + "' is a classifier (cspine.json kind), expected a segmentation model");
  if (cls_contract_.kind != ModelKind::classifier)
    throw ModelError("'" + options.cls_model + "' is a segmentation model (cspine.json kind), expected a classifier");
  if (options.batch_size < 0) throw UsageError("the segmentation batch size must be at least 1 (or 0 for auto)");
  // Always set: LibTorch's own default can be a single thread (it is on the 2-core development VM).
  set_backend_threads(resolve_threads(options.threads));
  if (options.preprocess != "auto" && options.preprocess != "host" && options.preprocess != "device")
    throw UsageError("preprocessing '" + options.preprocess + "': expected auto, host or device");
  seg_ = std::make_unique<TorchModel>(options.seg_model, options.device, options.fp16);
  cls_ = std::make_unique<TorchModel>(options.cls_model, options.device, options.fp16);
  const bool cuda = seg_->device().rfind("cuda", 0) == 0;
  device_preprocess_ = options.preprocess == "device" || (options.preprocess == "auto" && cuda);
  // auto: 32 slices on the CPU (larger batches measured no faster there); 128 on CUDA, where small batches
  // leave the GPU idle between kernel launches (a choice, not yet measured on a GPU).
  if (options_.batch_size == 0) options_.batch_size = cuda ? 128 : 32;
}

Predictor::~Predictor() = default;

std::string Predictor::device() const {
  return seg_->device();
}

PreparedStudy Predictor::prepare(const StudyIndex& index, const std::string& study_uid, int threads) const {
  PreparedStudy p;
  p.study_uid = study_uid;
  try {
    auto t = Clock::now();
    LoadOptions lo;
    lo.threads = threads;
    for (const auto& st : index.studies)
      if (st.study_uid == study_uid && st.selected_series >= 0)
        p.series_uid = st.series[static_cast<std::size_t>(st.selected_series)].series_uid;
    p.loaded = load_study(index, study_uid, lo);
    p.load_seconds = seconds_since(t);
    if (!device_preprocess_) {  // on the device, run() builds the input there
      t = Clock::now();
      p.seg_input = window_resize_volume(p.loaded.volume, seg_contract_, threads);
      p.resize_seconds = seconds_since(t);
    }
  } catch (...) {
    p.error = std::current_exception();
  }
  return p;
}

StudyResult Predictor::predict(const StudyIndex& index, const std::string& study_uid, const std::string& mask_path) const {
  return run(prepare(index, study_uid, options_.threads), mask_path);
}

StudyResult Predictor::run(PreparedStudy prepared, const std::string& mask_path) const {
  if (prepared.error) std::rethrow_exception(prepared.error);
  StudyResult r;
  r.study_uid = prepared.study_uid;
  const LoadedSeries& loaded = prepared.loaded;
  const Volume& v = loaded.volume;
  r.series_uid = prepared.series_uid;
  r.size = v.size;
  r.spacing = v.spacing;
  r.slice_numbers = loaded.slice_numbers;
  r.slice_z.resize(static_cast<std::size_t>(v.size[2]));
  for (int k = 0; k < v.size[2]; ++k) r.slice_z[static_cast<std::size_t>(k)] = v.voxel_to_lps(0, 0, k)[2];
  r.warnings = loaded.warnings;
  r.seconds.load = prepared.load_seconds;
  r.seconds.wait = prepared.load_seconds;  // loaded in turn; the batch runner measures the real wait
  throw_if_interrupted();

  // Segmentation over every slice, batch by batch; the label map stays at the model's resolution.
  auto t = Clock::now();
  const ModelContract& sc = seg_contract_;
  const int slices = v.size[2];
  const std::size_t plane = static_cast<std::size_t>(sc.height) * sc.width;
  const std::vector<float>& resized = prepared.seg_input;
  std::vector<uint8_t> small(plane * static_cast<std::size_t>(slices));
  std::vector<float> batch;
  DeviceVolume on_device;  // device mode: the volume crosses over once, for both models
  if (device_preprocess_) {
    on_device = seg_->upload(v.hu.data(), slices, v.size[1], v.size[0]);
    const int64_t classes =
        seg_->segment_volume(on_device, sc, options_.batch_size, small.data(), &r.seconds.segment_model);
    if (classes != static_cast<int64_t>(sc.classes.size()))
      throw ModelError("segmentation model '" + options_.seg_model + "' returned " + std::to_string(classes) +
                       " classes, its contract lists " + std::to_string(sc.classes.size()));
  }
  for (int s0 = 0; s0 < slices && !device_preprocess_; s0 += options_.batch_size) {
    const int n = std::min(options_.batch_size, slices - s0);
    std::vector<int> ks(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) ks[static_cast<std::size_t>(i)] = s0 + i;
    batch.resize(static_cast<std::size_t>(n) * sc.channels() * plane);
    stack_triplets(resized, slices, sc, ks, batch.data());
    const auto tm = Clock::now();
    const auto out = seg_->forward(batch.data(), {n, sc.channels(), sc.height, sc.width}, /*argmax_first=*/true);
    r.seconds.segment_model += seconds_since(tm);
    const HostTensor& lab = out.at(0);
    if (lab.channels != static_cast<int64_t>(sc.classes.size()))
      throw ModelError("segmentation model '" + options_.seg_model + "' returned " + std::to_string(lab.channels) +
                       " classes, its contract lists " + std::to_string(sc.classes.size()));
    if (lab.shape != std::vector<int64_t>{n, sc.height, sc.width})
      throw ModelError("segmentation model '" + options_.seg_model + "' returned labels of shape " + shape_text(lab.shape) +
                       ", expected " + shape_text({n, sc.height, sc.width}));
    std::copy(lab.labels.begin(), lab.labels.end(), small.begin() + static_cast<std::ptrdiff_t>(s0 * plane));
    throw_if_interrupted();
  }
  r.seconds.segment = seconds_since(t) + prepared.resize_seconds;

  // Cleanup on the model grid, then the label map on the CT grid and each vertebra's extent there.
  t = Clock::now();
  r.cleanup_voxels = keep_largest_components(small, {sc.width, sc.height, slices});
  const auto extents = vertebra_extents_resized(small, sc.width, sc.height, slices, v.size[0], v.size[1]);
  r.seconds.cleanup = seconds_since(t);

  // All seven vertebrae in one classifier batch; a missing or too-thin vertebra is zeros and gets the prior.
  // In device mode the crops are cut, windowed and resized where the volume is; otherwise on the host.
  t = Clock::now();
  const ModelContract& cc = cls_contract_;
  const int nsl = cc.slices_per_vertebra;
  std::array<const VertebraExtent*, 7> classified{};
  for (std::size_t k = 0; k < 7; ++k) {
    VertebraResult& vr = r.vertebrae[k];
    vr.extent = extents[k];
    if (!vr.extent) {
      vr.fallback = Fallback::not_found;
    } else if (vr.extent->slices < cc.min_slices) {
      vr.fallback = Fallback::too_few_slices;
    } else {
      vr.crop = crop_box(*vr.extent, cc.crop_margin);
      vr.picked = select_slices(*vr.extent, nsl);
      classified[k] = &*vr.extent;
    }
  }
  std::vector<HostTensor> out;
  if (device_preprocess_) {
    const CropRequest request = crop_request(cc, {classified.begin(), classified.end()}, slices);
    out = cls_->classify_crops(on_device, request, &r.seconds.classify_model);
  } else {
    const std::size_t per = static_cast<std::size_t>(nsl) * cc.channels() * cc.height * cc.width;
    std::vector<float> x(7 * per, 0.0f);
    parallel_for(7, options_.threads, [&](std::size_t k) {
      if (classified[k]) vertebra_input(v, *classified[k], cc, x.data() + k * per);
    });
    const auto tm = Clock::now();
    out = cls_->forward(x.data(), {7, nsl, cc.channels(), cc.height, cc.width});
    r.seconds.classify_model = seconds_since(tm);
  }
  const HostTensor& logits = out.at(0);
  if (logits.values.size() != 7)
    throw ModelError("classifier '" + options_.cls_model + "' returned logits of shape " + shape_text(logits.shape) +
                     " for 7 vertebrae, expected [7] or [7, 1]");
  const HostTensor* attention = nullptr;
  if (out.size() > 1) {
    attention = &out[1];
    if (attention->shape != std::vector<int64_t>{7, nsl})
      throw ModelError("classifier '" + options_.cls_model + "' returned attention of shape " +
                       shape_text(attention->shape) + ", expected " + shape_text({7, nsl}));
  }
  std::array<double, 7> p{};
  for (int k = 0; k < 7; ++k) {
    VertebraResult& vr = r.vertebrae[static_cast<std::size_t>(k)];
    if (vr.fallback != Fallback::none) {
      vr.probability = cc.prior[static_cast<std::size_t>(k)];
    } else {
      const double z = logits.values[static_cast<std::size_t>(k)];
      vr.probability = 1.0 / (1.0 + std::exp(-z));
      if (attention) {
        const float* a = attention->values.data() + static_cast<std::size_t>(k) * nsl;
        vr.attention.assign(a, a + nsl);
        vr.key = static_cast<int>(std::max_element(vr.attention.begin(), vr.attention.end()) - vr.attention.begin());
      }
    }
    p[static_cast<std::size_t>(k)] = vr.probability;
  }
  r.patient_overall = noisy_or(p);
  r.seconds.classify = seconds_since(t);

  if (!mask_path.empty()) {
    t = Clock::now();
    write_label_nifti(v, resize_labels_nearest(small, sc.width, sc.height, slices, v.size[0], v.size[1]), mask_path);
    r.seconds.masks = seconds_since(t);
  }
  return r;
}

}  // namespace cspine
