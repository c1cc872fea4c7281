// The preprocessing spec on the C++ side: windowing, 2.5D triplets, resizing, vertebra extents, crops and
// slice selection, exactly as scripts/cspine_models/preprocess.py does them for training (the parity test
// tests/python/test_preprocess_parity.py runs both on one study). docs/model-contract.md states the rules.
// The primitives live in src/pipeline/preprocess.cpp; each stage's part with its stage: the segmentation input
// in segmenter.cpp, the extents in vertebra_locator.cpp, crops and slice selection in crop_sampler.cpp.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "cspine/contract.h"
#include "cspine/volume.h"

namespace cspine {

// HU -> [0, 1]: (hu - low) / (high - low) in float, clamped.
void window_slice(const int16_t* hu, std::size_t count, double low, double high, float* out);

// Bilinear resize of one float image (rows x cols, row-major) to out_rows x out_cols with PyTorch's rule
// (align_corners=False, no antialiasing, source index clamped at 0).
void resize_bilinear(const float* in, int rows, int cols, float* out, int out_rows, int out_cols);

// Indices of the slices making the channels of slice k: k + offset, clamped to [0, slices - 1].
std::vector<int> triplet_indices(int k, const std::vector<int>& offsets, int slices);

// Segmentation input for slice k: channels() x height x width floats written to `out`.
void segmentation_input(const Volume& volume, int k, const ModelContract& c, float* out);

// Every slice windowed and resized to the model's input size once: slices x height x width floats (slices
// in parallel). Stacking these per slice gives exactly segmentation_input's values, without windowing and
// resizing each slice once per channel.
std::vector<float> window_resize_volume(const Volume& volume, const ModelContract& c, int threads = 0);

// Segmentation input for slices `ks` from window_resize_volume's result: ks.size() x channels x height x width.
void stack_triplets(const std::vector<float>& resized, int slices, const ModelContract& c, const std::vector<int>& ks,
                    float* out);

// Where one vertebra lies in the CT grid (inclusive index ranges) and on how many slices.
struct VertebraExtent {
  int label = 0;  // 1..7 = C1..C7
  int z0 = 0, z1 = -1, y0 = 0, y1 = -1, x0 = 0, x1 = -1;
  int slices = 0;
  std::size_t voxels = 0;
};

// Extents of labels 1..7 in a label map laid out like the volume (i fastest); nullopt for an absent label.
std::array<std::optional<VertebraExtent>, 7> vertebra_extents(const std::vector<uint8_t>& labels,
                                                              const std::array<int, 3>& size);

// vertebra_extents of resize_labels_nearest(labels, ...) without building the resized map: each small voxel
// stands for the block of output pixels the nearest rule maps onto it. Exactly equal (tested), far cheaper.
std::array<std::optional<VertebraExtent>, 7> vertebra_extents_resized(const std::vector<uint8_t>& labels, int cols,
                                                                      int rows, int slices, int out_cols, int out_rows);

// Square crop around the vertebra's in-plane box: side = ceil(max(w, h) * (1 + 2 margin)) pixels, centred
// (floor between pixels); half-open [x, x + side) x [y, y + side), may extend past the image.
struct CropBox {
  int x = 0, y = 0, side = 0;
};
CropBox crop_box(const VertebraExtent& e, double margin);

// n slice indices spread evenly over [z0, z1] (both ends included), rounded half up.
std::vector<int> select_slices(const VertebraExtent& e, int n);

// Classifier input for one vertebra: slices_per_vertebra x channels x height x width floats in `out`;
// returns the slice indices used. Pixels of the crop outside the image are 0 (after windowing).
std::vector<int> vertebra_input(const Volume& volume, const VertebraExtent& e, const ModelContract& c, float* out);

}  // namespace cspine
