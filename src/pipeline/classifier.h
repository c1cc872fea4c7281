// Stage 4, the classifier: the planned vertebrae's crops -> one probability per vertebra and, when the model
// returns it, attention over each vertebra's slices. Square crops (contract version 1's rule): all seven vertebrae
// in one batch, 7 logits and attention [7, N]. Study-box crops: only the vertebrae that are classified, logits
// [V] or [V, members] (ensemble "mean_sigmoid": the mean of the members' sigmoids) and attention [V, N].
#pragma once
#include <array>
#include <vector>

#include "cspine/backend.h"
#include "cspine/contract.h"
#include "cspine/predict.h"

namespace cspine {

struct ClassifierOutput {
  std::array<double, 7> logits{};       // single models; for an ensemble, the first member's
  std::array<double, 7> probability{};  // by the contract's ensemble rule (classified vertebrae)
  std::vector<float> attention;         // 7 x slices_per_vertebra, empty when the model returns none
  // Kept with `keep`: the input and each item's member logits (items = the classified vertebrae of a study-box
  // contract, all seven otherwise).
  std::vector<float> input, member_logits;
  std::vector<int64_t> input_shape;
  std::vector<int> items;
};

// `on_device`: the volume on the model's device (crops built there), or null to build them on the host. `box`: the
// study box (contract crop "study_box"), else null. Adds the forward pass's time to seconds.classify_model.
ClassifierOutput classify(const TorchModel& model, const ModelContract& contract, const Volume& volume,
                          const std::array<VertebraResult, 7>& plan, const StudyBox* box, const DeviceVolume* on_device,
                          int threads, StageSeconds& seconds, bool keep = false);

}  // namespace cspine
