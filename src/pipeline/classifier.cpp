#include "pipeline/classifier.h"

#include <chrono>

#include "cspine/error.h"
#include "pipeline/crop_sampler.h"
#include "pipeline/shapes.h"

namespace cspine {

ClassifierOutput classify(const TorchModel& model, const ModelContract& cc, const Volume& v,
                          const std::array<VertebraResult, 7>& plan, const DeviceVolume* on_device, int threads,
                          StageSeconds& seconds) {
  const int nsl = cc.slices_per_vertebra;
  const auto n = static_cast<int64_t>(plan.size());
  std::vector<HostTensor> out;
  if (on_device) {
    out = model.classify_crops(*on_device, device_crop_request(plan, cc, v.size[2]), &seconds.classify_model);
  } else {
    const std::vector<float> x = host_crops(v, plan, cc, threads);
    const auto tm = std::chrono::steady_clock::now();
    out = model.forward(x.data(), {n, nsl, cc.channels(), cc.height, cc.width});
    seconds.classify_model += std::chrono::duration<double>(std::chrono::steady_clock::now() - tm).count();
  }
  const HostTensor& logits = out.at(0);
  if (logits.values.size() != plan.size())
    throw ModelError("classifier '" + model.path() + "' returned logits of shape " + shape_text(logits.shape) +
                     " for 7 vertebrae, expected [7] or [7, 1]");
  ClassifierOutput r;
  for (std::size_t k = 0; k < plan.size(); ++k) r.logits[k] = logits.values[k];
  if (out.size() > 1) {
    if (out[1].shape != std::vector<int64_t>{n, nsl})
      throw ModelError("classifier '" + model.path() + "' returned attention of shape " + shape_text(out[1].shape) +
                       ", expected " + shape_text({n, nsl}));
    r.attention = out[1].values;
  }
  return r;
}

}  // namespace cspine
