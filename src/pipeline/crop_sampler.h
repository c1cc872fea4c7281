// Stage 3, the crop sampler: each vertebra's extent -> whether it can be classified (enough slices) and, if so,
// its square crop and the slices fed to the classifier; then the classifier's input, on the host (7 x N x C x H
// x W floats, zeros for a vertebra that is not classified) or as a request the plugin builds on the device.
#pragma once
#include <array>
#include <optional>
#include <vector>

#include "cspine/backend.h"
#include "cspine/contract.h"
#include "cspine/predict.h"

namespace cspine {

// Per vertebra: the extent, and either a fallback (not found, too few slices) or the crop and picked slices.
// `thin_fallback` false classifies every vertebra found however thin (what training sees: `cspine preprocess`).
std::array<VertebraResult, 7> plan_vertebrae(const std::array<std::optional<VertebraExtent>, 7>& extents,
                                             const ModelContract& contract, bool thin_fallback = true);

// The classifier's input built on the host for the planned vertebrae (vertebrae prepared in parallel).
std::vector<float> host_crops(const Volume& volume, const std::array<VertebraResult, 7>& plan,
                              const ModelContract& contract, int threads);

// The vertebrae (0..6) the classifier runs on: those without a fallback.
std::vector<int> classified_vertebrae(const std::array<VertebraResult, 7>& plan);

// The classifier's input under the contract's "study_box" crop, for the classified vertebrae only
// (classified_vertebrae(plan).size() x N x 1 x height x width floats): per vertebra its picked slices as intensities
// (zeros after them up to N), resized to the segmentation grid, cropped to the box, resized to the model's size,
// with OpenCV (the contract's resize rule). Vertebrae in parallel.
std::vector<float> host_box_crops(const Volume& volume, const std::array<VertebraResult, 7>& plan, const StudyBox& box,
                                  const ModelContract& contract, int threads);

// The same input as a request for the models' device (TorchModel::classify_crops).
CropRequest device_crop_request(const std::array<VertebraResult, 7>& plan, const ModelContract& contract, int slices);

}  // namespace cspine
