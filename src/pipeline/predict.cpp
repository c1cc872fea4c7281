// One study through both models: the Predictor loads the models once and composes the stages (see
// include/cspine/predict.h and docs/architecture.md for the data flow).
#include "cspine/predict.h"

#include <chrono>

#include <spdlog/spdlog.h>

#include "cspine/backend.h"
#include "cspine/error.h"
#include "cspine/volume.h"
#include "pipeline/aggregator.h"
#include "pipeline/classifier.h"
#include "pipeline/crop_sampler.h"
#include "pipeline/segmenter.h"
#include "pipeline/slice_input.h"
#include "pipeline/study_box.h"
#include "pipeline/vertebra_locator.h"
#include "util/interrupt.h"
#include "util/parallel.h"

namespace cspine {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

const char* fallback_name(Fallback f) {
  switch (f) {
    case Fallback::none: return "";
    case Fallback::not_found: return "not-found";
    case Fallback::too_few_slices: return "too-few-slices";
  }
  return "";
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
  // Both models read the same loaded volume: one slice order and one kind of values.
  if (seg_contract_.slice_order != cls_contract_.slice_order || seg_contract_.intensity != cls_contract_.intensity)
    throw ModelError("'" + options.seg_model + "' and '" + options.cls_model +
                     "' disagree on input.slice_order or input.intensity; a pair of models must read the study the "
                     "same way (docs/model-contract.md)");
  seg_ = std::make_unique<TorchModel>(options.seg_model, options.device, options.fp16, seg_contract_.exact_numerics);
  cls_ = std::make_unique<TorchModel>(options.cls_model, options.device, options.fp16, cls_contract_.exact_numerics);
  const bool cuda = seg_->device().rfind("cuda", 0) == 0;
  // Rules the plugin cannot apply on the device (OpenCV's arithmetic, per-slice min-max, study boxes) are applied
  // on the host whatever the device; the models still run there.
  const bool device_able = seg_contract_.device_preprocessable() && cls_contract_.device_preprocessable();
  if (options.preprocess == "device" && !device_able)
    spdlog::warn("--preprocess device: these models' input rules are applied on the host (OpenCV, per-slice min-max "
                 "or study boxes have no device implementation); the models still run on {}", seg_->device());
  device_preprocess_ = device_able && (options.preprocess == "device" || (options.preprocess == "auto" && cuda));
  // auto: 32 slices on the CPU (larger batches measured no faster there); 128 on CUDA, where small batches
  // leave the GPU idle between kernel launches (a choice, not yet measured on a GPU).
  if (options_.batch_size == 0) options_.batch_size = cuda ? 128 : 32;
  segmenter_ = std::make_unique<Segmenter>(*seg_, seg_contract_, options_.batch_size, options_.threads);
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
    lo.stored_values = seg_contract_.intensity == IntensityRule::slice_minmax;
    for (const auto& st : index.studies)
      if (st.study_uid == study_uid && st.selected_series >= 0)
        p.series_uid = st.series[static_cast<std::size_t>(st.selected_series)].series_uid;
    p.loaded = load_study(index, study_uid, lo);
    p.load_seconds = seconds_since(t);
    p.order = model_slice_order(p.loaded.slice_numbers, seg_contract_.slice_order);
    if (!device_preprocess_) {  // on the device, the segmenter builds its input there
      t = Clock::now();
      p.seg_input = Segmenter::host_input(p.loaded.volume, seg_contract_, threads, p.order);
      p.resize_seconds = seconds_since(t);
    }
  } catch (...) {
    p.error = std::current_exception();
  }
  return p;
}

StudyResult Predictor::run(PreparedStudy prepared) const {
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
  r.sources = loaded.slice_sources;
  r.source_files = loaded.slice_files;
  r.geometry = v.geometry();
  r.seconds.load = prepared.load_seconds;
  r.seconds.wait = prepared.load_seconds;  // loaded in turn; the batch runner measures the real wait
  throw_if_interrupted();

  // The one host/device switch: in device mode the volume crosses over once, for both models.
  DeviceVolume on_device;
  if (device_preprocess_) on_device = seg_->upload(v.hu.data(), v.size[2], v.size[1], v.size[0]);
  const DeviceVolume* dv = device_preprocess_ ? &on_device : nullptr;

  auto t = Clock::now();
  r.labels = segmenter_->segment(v, prepared.seg_input, prepared.order, dv, r.seconds);
  r.seconds.segment = seconds_since(t) + prepared.resize_seconds;
  std::shared_ptr<StageIntermediates> kept;
  if (options_.keep_intermediates) {
    kept = std::make_shared<StageIntermediates>();
    kept->order = prepared.order;
    const std::size_t plane = static_cast<std::size_t>(r.labels.rows) * static_cast<std::size_t>(r.labels.cols);
    kept->labels.resize(r.labels.labels.size());
    for (std::size_t i = 0; i < prepared.order.size(); ++i)
      std::copy_n(r.labels.labels.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(prepared.order[i]) * plane),
                  plane, kept->labels.begin() + static_cast<std::ptrdiff_t>(i * plane));
  }

  t = Clock::now();
  const LocatedVertebrae located = locate_vertebrae(r.labels, v.size[0], v.size[1], seg_contract_.cleanup);
  r.cleanup_voxels = located.cleanup_voxels;
  if (cls_contract_.locate == LocateRule::study_box)
    r.study_box = locate_study_box(r.labels, prepared.order, cls_contract_.box_min_voxels);
  r.seconds.cleanup = seconds_since(t);

  t = Clock::now();
  r.vertebrae = r.study_box ? plan_box_vertebrae(*r.study_box, prepared.order, located.extents, cls_contract_)
                            : plan_vertebrae(located.extents, cls_contract_);
  ClassifierOutput out = classify(*cls_, cls_contract_, v, r.vertebrae, r.study_box ? &*r.study_box : nullptr, dv,
                                  options_.threads, r.seconds, options_.keep_intermediates);
  r.patient_overall = aggregate(out, cls_contract_, r.vertebrae);
  if (kept) {
    kept->cls_input = std::move(out.input);
    kept->cls_shape = out.input_shape;
    kept->classified = out.items;
    kept->member_logits = out.member_logits;
    kept->members = cls_contract_.crop == CropRule::study_box ? cls_contract_.members : 1;
    r.intermediates = kept;
  }
  r.seconds.classify = seconds_since(t);
  r.ct = std::make_shared<const Volume>(std::move(prepared.loaded.volume));  // no copy: the study is done with it
  return r;
}

}  // namespace cspine
