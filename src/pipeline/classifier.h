// Stage 4, the classifier: the planned vertebrae's crops -> one logit per vertebra and, when the model returns
// it, attention over each vertebra's slices. All seven vertebrae go in one batch; the output is checked against
// the contract (7 logits, attention [7, N]).
#pragma once
#include <array>
#include <vector>

#include "cspine/backend.h"
#include "cspine/contract.h"
#include "cspine/predict.h"

namespace cspine {

struct ClassifierOutput {
  std::array<double, 7> logits{};
  std::vector<float> attention;  // 7 x slices_per_vertebra, empty when the model returns none
};

// `on_device`: the volume on the model's device (crops built there), or null to build them on the host.
// Adds the forward pass's time to seconds.classify_model.
ClassifierOutput classify(const TorchModel& model, const ModelContract& contract, const Volume& volume,
                          const std::array<VertebraResult, 7>& plan, const DeviceVolume* on_device, int threads,
                          StageSeconds& seconds);

}  // namespace cspine
