#include "pipeline/classifier.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "cspine/error.h"
#include "pipeline/crop_sampler.h"
#include "pipeline/shapes.h"

namespace cspine {

namespace {

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Square crops: all seven vertebrae (zeros for those not classified), as contract version 1 defines.
ClassifierOutput classify_square(const TorchModel& model, const ModelContract& cc, const Volume& v,
                                 const std::array<VertebraResult, 7>& plan, const DeviceVolume* on_device, int threads,
                                 StageSeconds& seconds, bool keep) {
  const int nsl = cc.slices_per_vertebra;
  const auto n = static_cast<int64_t>(plan.size());
  const std::vector<int64_t> shape{n, nsl, cc.channels(), cc.height, cc.width};
  std::vector<HostTensor> out;
  ClassifierOutput r;
  if (on_device) {
    out = model.classify_crops(*on_device, device_crop_request(plan, cc, v.size[2]), &seconds.classify_model);
  } else {
    std::vector<float> x = host_crops(v, plan, cc, threads);
    const auto tm = std::chrono::steady_clock::now();
    out = model.forward(x.data(), shape);
    seconds.classify_model += std::chrono::duration<double>(std::chrono::steady_clock::now() - tm).count();
    if (keep) r.input = std::move(x);
  }
  const HostTensor& logits = out.at(0);
  if (logits.values.size() != plan.size())
    throw ModelError("classifier '" + model.path() + "' returned logits of shape " + shape_text(logits.shape) +
                     " for 7 vertebrae, expected [7] or [7, 1]");
  for (std::size_t k = 0; k < plan.size(); ++k) {
    r.logits[k] = logits.values[k];
    r.probability[k] = sigmoid(r.logits[k]);
  }
  if (out.size() > 1) {
    if (out[1].shape != std::vector<int64_t>{n, nsl})
      throw ModelError("classifier '" + model.path() + "' returned attention of shape " + shape_text(out[1].shape) +
                       ", expected " + shape_text({n, nsl}));
    r.attention = out[1].values;
  }
  if (keep) {
    r.input_shape = shape;
    r.member_logits = logits.values;
    for (int k = 0; k < 7; ++k) r.items.push_back(k);
  }
  return r;
}

// Study-box crops: only the classified vertebrae go in; an ensemble's members come back as logits [V, M].
ClassifierOutput classify_box(const TorchModel& model, const ModelContract& cc, const Volume& v,
                              const std::array<VertebraResult, 7>& plan, const StudyBox& box, int threads,
                              StageSeconds& seconds, bool keep) {
  const int nsl = cc.slices_per_vertebra, members = cc.members;
  ClassifierOutput r;
  r.items = classified_vertebrae(plan);
  const auto n = static_cast<int64_t>(r.items.size());
  r.input_shape = {n, nsl, cc.channels(), cc.height, cc.width};
  if (n == 0) return r;  // nothing to classify: every vertebra gets the prior
  std::vector<float> x = host_box_crops(v, plan, box, cc, threads);
  const auto tm = std::chrono::steady_clock::now();
  const std::vector<HostTensor> out = model.forward(x.data(), r.input_shape);
  seconds.classify_model += std::chrono::duration<double>(std::chrono::steady_clock::now() - tm).count();
  const HostTensor& logits = out.at(0);
  const bool shape_ok = logits.values.size() == static_cast<std::size_t>(n * members) &&
                        (logits.shape == std::vector<int64_t>{n, members} ||
                         (members == 1 && logits.shape == std::vector<int64_t>{n}));
  if (!shape_ok)
    throw ModelError("classifier '" + model.path() + "' returned logits of shape " + shape_text(logits.shape) + " for " +
                     std::to_string(n) + " vertebrae, expected " + shape_text({n, members}) + " (" +
                     std::to_string(members) + " ensemble member(s))");
  if (out.size() > 1) {
    if (out[1].shape != std::vector<int64_t>{n, nsl})
      throw ModelError("classifier '" + model.path() + "' returned attention of shape " + shape_text(out[1].shape) +
                       ", expected " + shape_text({n, nsl}));
    r.attention.assign(7 * static_cast<std::size_t>(nsl), 0.0f);
  }
  for (int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(r.items[static_cast<std::size_t>(i)]);
    double sum = 0;
    for (int m = 0; m < members; ++m) sum += sigmoid(logits.values[static_cast<std::size_t>(i * members + m)]);
    r.logits[k] = logits.values[static_cast<std::size_t>(i * members)];
    r.probability[k] = sum / members;
    if (out.size() > 1)
      std::copy_n(out[1].values.data() + i * nsl, nsl, r.attention.data() + k * static_cast<std::size_t>(nsl));
  }
  if (keep) {
    r.input = std::move(x);
    r.member_logits = logits.values;
  }
  return r;
}

}  // namespace

ClassifierOutput classify(const TorchModel& model, const ModelContract& cc, const Volume& v,
                          const std::array<VertebraResult, 7>& plan, const StudyBox* box, const DeviceVolume* on_device,
                          int threads, StageSeconds& seconds, bool keep) {
  if (cc.crop == CropRule::study_box) {
    if (!box) throw Error(ExitCode::internal, "classify: a study_box contract without a study box");
    return classify_box(model, cc, v, plan, *box, threads, seconds, keep);
  }
  return classify_square(model, cc, v, plan, on_device, threads, seconds, keep);
}

}  // namespace cspine
