// Stage 2 under the contract's "study_box" rules (locate, crop and select; docs/model-contract.md): one box for
// the whole study on the segmentation grid, each slice's class by majority inside it, and per vertebra the slices
// of its class, picked with numpy's linspace(0, n - 1, N, dtype=int). This is how the RSNA 2022 second-place
// solution goes from the segmentation to the classifier.
#pragma once
#include <array>
#include <vector>

#include "cspine/contract.h"
#include "cspine/predict.h"

namespace cspine {

// The box and per-slice classes of `grid` (volume order) seen in model order (`order`): planes (slices, rows,
// columns) holding at least `min_voxels` vertebra voxels (labels 1..7); the first and last such plane on each
// axis, the whole axis when there is none. Classes are given for the slices inside the box.
StudyBox locate_study_box(const LabelGrid& grid, const std::vector<int>& order, int min_voxels);

// numpy.linspace(0, n - 1, count, dtype=int): floor(i * ((n - 1) / (count - 1))) for i < count - 1, then n - 1.
std::vector<int> linspace_floor(int n, int count);

// Per vertebra, from the box's classes: its slices (model order), the fallback (none found: not-found; fewer than
// min_slices: too-few-slices) or the picked slices (volume indices, at most slices_per_vertebra; the classifier's
// input is zero-padded after them). `extents` (for the report) are kept as they are.
std::array<VertebraResult, 7> plan_box_vertebrae(const StudyBox& box, const std::vector<int>& order,
                                                 const std::array<std::optional<VertebraExtent>, 7>& extents,
                                                 const ModelContract& contract);

}  // namespace cspine
