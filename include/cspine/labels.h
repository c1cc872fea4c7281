// Operations on vertebra label maps (uint8, 1..7 = C1..C7, slices of rows x columns, columns fastest).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace cspine {

// Keeps only the largest 3-D connected component (6-connectivity: faces) of each label in [first, last];
// the other voxels of those labels become 0 (background). Labels outside the range are untouched. Ties go to
// the component met first in raster order (i fastest, then j, then k). `size` = {columns, rows, slices}.
// Returns the number of voxels removed. Uses ITK's ScalarConnectedComponentImageFilter (src/image/label_components.cpp).
std::size_t keep_largest_components(std::vector<uint8_t>& labels, const std::array<int, 3>& size, int first = 1,
                                    int last = 7);

// In-plane nearest-neighbour resize of a label map (slices of rows x cols, cols fastest) with PyTorch's
// 'nearest' rule: source index = min(floor(dst * (float(in) / out)), in - 1) in float arithmetic
// (src/pipeline/vertebra_locator.cpp, next to the extents computed with the same rule).
std::vector<uint8_t> resize_labels_nearest(const std::vector<uint8_t>& labels, int cols, int rows, int slices,
                                           int out_cols, int out_rows);

}  // namespace cspine
