// The contract's per-slice input rules (docs/model-contract.md, version 2), shared by the segmenter and the crop
// sampler: in which order the model sees the slices, how a slice's values become intensities (HU window, or
// per-slice min-max of the stored values), how it is resized (PyTorch bilinear, or OpenCV itself), and what a
// neighbour past either end is (the edge slice, or zeros).
#pragma once
#include <vector>

#include "cspine/contract.h"
#include "cspine/volume.h"

namespace cspine {

// order[i] = the volume slice the model sees as its i-th: the volume's own order (position) or sorted by
// InstanceNumber (`slice_numbers`, ties in position order).
std::vector<int> model_slice_order(const std::vector<int>& slice_numbers, SliceOrderRule rule);

// Slice k of `volume` as float64 intensities under the contract's rule: the HU window (as window_slice), or
// (v - min) / (max - min) of the slice's values, 0 everywhere for a constant slice.
void slice_intensities(const Volume& volume, int k, const ModelContract& c, double* out);

// Every slice, in `order`, as intensities resized to the contract's size by its resize rule:
// order.size() x height x width floats.
std::vector<float> model_planes(const Volume& volume, const std::vector<int>& order, const ModelContract& c,
                                int threads);

// The input planes of model slice k: for each offset, the index into `order` of that neighbour, or -1 for a
// plane of zeros (edge rule "zeros" past either end).
std::vector<int> neighbour_planes(int k, const ModelContract& c, int slices);

}  // namespace cspine
