#include "pipeline/vertebra_locator.h"

#include <algorithm>
#include <cmath>

#include "cspine/error.h"
#include "cspine/labels.h"
#include "cspine/preprocess.h"

namespace cspine {

namespace {

// PyTorch's nearest source index (upsample_nearest: identity, exact 2x, else floor(dst * float scale)).
std::vector<int> nearest_sources(int in, int out) {
  std::vector<int> src(static_cast<std::size_t>(out));
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int d = 0; d < out; ++d) {
    if (out == in) src[static_cast<std::size_t>(d)] = d;
    else if (out == 2 * in) src[static_cast<std::size_t>(d)] = d >> 1;
    else src[static_cast<std::size_t>(d)] = std::min(static_cast<int>(std::floor(static_cast<float>(d) * scale)), in - 1);
  }
  return src;
}

}  // namespace

std::vector<uint8_t> resize_labels_nearest(const std::vector<uint8_t>& labels, int cols, int rows, int slices,
                                           int out_cols, int out_rows) {
  const std::size_t in_plane = static_cast<std::size_t>(cols) * rows, out_plane = static_cast<std::size_t>(out_cols) * out_rows;
  if (labels.size() != in_plane * static_cast<std::size_t>(slices))
    throw Error(ExitCode::internal, "resize_labels_nearest: label map does not match its size");
  const std::vector<int> sx = nearest_sources(cols, out_cols), sy = nearest_sources(rows, out_rows);
  std::vector<uint8_t> out(out_plane * static_cast<std::size_t>(slices));
  for (int k = 0; k < slices; ++k) {
    const uint8_t* in = labels.data() + static_cast<std::size_t>(k) * in_plane;
    uint8_t* o = out.data() + static_cast<std::size_t>(k) * out_plane;
    for (int y = 0; y < out_rows; ++y) {
      const uint8_t* row = in + static_cast<std::size_t>(sy[static_cast<std::size_t>(y)]) * cols;
      uint8_t* orow = o + static_cast<std::size_t>(y) * out_cols;
      for (int x = 0; x < out_cols; ++x) orow[x] = row[sx[static_cast<std::size_t>(x)]];
    }
  }
  return out;
}

std::array<std::optional<VertebraExtent>, 7> vertebra_extents_resized(const std::vector<uint8_t>& labels, int cols,
                                                                      int rows, int slices, int out_cols, int out_rows) {
  const std::size_t plane = static_cast<std::size_t>(cols) * rows;
  if (labels.size() != plane * static_cast<std::size_t>(slices))
    throw Error(ExitCode::internal, "vertebra_extents_resized: label map does not match its size");
  // Output range [first, last] (first > last when none) that the nearest rule maps onto each source index.
  auto ranges = [](int in, int out) {
    std::vector<int> first(static_cast<std::size_t>(in), 1 << 30), last(static_cast<std::size_t>(in), -1);
    const std::vector<int> src = nearest_sources(in, out);
    for (int d = 0; d < out; ++d) {
      const auto s = static_cast<std::size_t>(src[static_cast<std::size_t>(d)]);
      first[s] = std::min(first[s], d);
      last[s] = std::max(last[s], d);
    }
    return std::make_pair(first, last);
  };
  const auto [cx0, cx1] = ranges(cols, out_cols);
  const auto [ry0, ry1] = ranges(rows, out_rows);
  std::array<VertebraExtent, 7> e;
  std::array<int, 7> last_slice;
  last_slice.fill(-1);
  for (auto& x : e) {
    x.z0 = x.y0 = x.x0 = 1 << 30;
    x.z1 = x.y1 = x.x1 = -1;
  }
  for (int k = 0; k < slices; ++k) {
    for (int j = 0; j < rows; ++j) {
      const auto ju = static_cast<std::size_t>(j);
      if (ry1[ju] < 0) continue;  // no output row samples this one
      const uint8_t* row = labels.data() + static_cast<std::size_t>(k) * plane + ju * cols;
      for (int i = 0; i < cols; ++i) {
        const int l = row[i];
        const auto iu = static_cast<std::size_t>(i);
        if (l < 1 || l > 7 || cx1[iu] < 0) continue;
        VertebraExtent& x = e[static_cast<std::size_t>(l - 1)];
        x.z0 = std::min(x.z0, k);
        x.z1 = std::max(x.z1, k);
        x.y0 = std::min(x.y0, ry0[ju]);
        x.y1 = std::max(x.y1, ry1[ju]);
        x.x0 = std::min(x.x0, cx0[iu]);
        x.x1 = std::max(x.x1, cx1[iu]);
        x.voxels += static_cast<std::size_t>(cx1[iu] - cx0[iu] + 1) * static_cast<std::size_t>(ry1[ju] - ry0[ju] + 1);
        if (last_slice[static_cast<std::size_t>(l - 1)] != k) {
          last_slice[static_cast<std::size_t>(l - 1)] = k;
          ++x.slices;
        }
      }
    }
  }
  std::array<std::optional<VertebraExtent>, 7> out;
  for (int v = 0; v < 7; ++v) {
    if (e[static_cast<std::size_t>(v)].voxels == 0) continue;
    e[static_cast<std::size_t>(v)].label = v + 1;
    out[static_cast<std::size_t>(v)] = e[static_cast<std::size_t>(v)];
  }
  return out;
}

std::array<std::optional<VertebraExtent>, 7> vertebra_extents(const std::vector<uint8_t>& labels,
                                                              const std::array<int, 3>& size) {
  if (labels.size() != static_cast<std::size_t>(size[0]) * size[1] * size[2])
    throw Error(ExitCode::internal, "label map does not match the volume's size");
  return vertebra_extents_resized(labels, size[0], size[1], size[2], size[0], size[1]);  // identity mapping
}

LocatedVertebrae locate_vertebrae(LabelGrid& grid, int ct_cols, int ct_rows, CleanupRule cleanup) {
  LocatedVertebrae out;
  if (cleanup == CleanupRule::largest_component)
    out.cleanup_voxels = keep_largest_components(grid.labels, {grid.cols, grid.rows, grid.slices});
  out.extents = vertebra_extents_resized(grid.labels, grid.cols, grid.rows, grid.slices, ct_cols, ct_rows);
  return out;
}

std::vector<uint8_t> StudyResult::label_map() const {
  return resize_labels_nearest(labels.labels, labels.cols, labels.rows, labels.slices, size[0], size[1]);
}

}  // namespace cspine
