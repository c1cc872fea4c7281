// The preprocessing spec (see include/cspine/preprocess.h). Float arithmetic follows PyTorch's CPU kernels
// operation by operation, so the Python side gives the same values to within rounding.
#include "cspine/preprocess.h"

#include <algorithm>
#include <cmath>

#include "cspine/error.h"
#include "cspine/predict.h"
#include "util/parallel.h"

namespace cspine {

void window_slice(const int16_t* hu, std::size_t count, double low, double high, float* out) {
  const float lo = static_cast<float>(low), range = static_cast<float>(high) - static_cast<float>(low);
  for (std::size_t i = 0; i < count; ++i) {
    const float x = (static_cast<float>(hu[i]) - lo) / range;
    out[i] = std::min(std::max(x, 0.0f), 1.0f);
  }
}

namespace {

// One axis of PyTorch's linear interpolation weights (upsample_bilinear2d, align_corners=False).
struct Taps {
  std::vector<int> i0, i1;
  std::vector<float> w0, w1;
};

Taps taps(int in, int out) {
  Taps t;
  t.i0.resize(out);
  t.i1.resize(out);
  t.w0.resize(out);
  t.w1.resize(out);
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int d = 0; d < out; ++d) {
    float src = scale * (static_cast<float>(d) + 0.5f) - 0.5f;
    if (src < 0) src = 0;
    const int i0 = static_cast<int>(src);
    const int i1 = i0 + (i0 < in - 1 ? 1 : 0);
    const float l1 = src - static_cast<float>(i0);
    t.i0[d] = i0;
    t.i1[d] = i1;
    t.w1[d] = l1;
    t.w0[d] = 1.0f - l1;
  }
  return t;
}

}  // namespace

void resize_bilinear(const float* in, int rows, int cols, float* out, int out_rows, int out_cols) {
  if (rows == out_rows && cols == out_cols) {
    std::copy(in, in + static_cast<std::size_t>(rows) * cols, out);
    return;
  }
  const Taps ty = taps(rows, out_rows), tx = taps(cols, out_cols);
  for (int y = 0; y < out_rows; ++y) {
    const float* r0 = in + static_cast<std::size_t>(ty.i0[y]) * cols;
    const float* r1 = in + static_cast<std::size_t>(ty.i1[y]) * cols;
    float* o = out + static_cast<std::size_t>(y) * out_cols;
    for (int x = 0; x < out_cols; ++x) {
      const float a = r0[tx.i0[x]] * tx.w0[x] + r0[tx.i1[x]] * tx.w1[x];
      const float b = r1[tx.i0[x]] * tx.w0[x] + r1[tx.i1[x]] * tx.w1[x];
      o[x] = a * ty.w0[y] + b * ty.w1[y];
    }
  }
}

std::vector<int> triplet_indices(int k, const std::vector<int>& offsets, int slices) {
  std::vector<int> idx;
  idx.reserve(offsets.size());
  for (int o : offsets) idx.push_back(std::clamp(k + o, 0, slices - 1));
  return idx;
}

void segmentation_input(const Volume& v, int k, const ModelContract& c, float* out) {
  const std::size_t n = v.slice_voxels(), plane = static_cast<std::size_t>(c.height) * c.width;
  std::vector<float> windowed(n);
  const auto idx = triplet_indices(k, c.slice_offsets, v.size[2]);
  for (std::size_t ch = 0; ch < idx.size(); ++ch) {
    window_slice(v.slice(idx[ch]), n, c.hu_low, c.hu_high, windowed.data());
    resize_bilinear(windowed.data(), v.size[1], v.size[0], out + ch * plane, c.height, c.width);
  }
}

std::vector<float> window_resize_volume(const Volume& v, const ModelContract& c, int threads) {
  const std::size_t n = v.slice_voxels(), plane = static_cast<std::size_t>(c.height) * c.width;
  std::vector<float> out(plane * static_cast<std::size_t>(v.size[2]));
  parallel_for(static_cast<std::size_t>(v.size[2]), threads, [&](std::size_t k) {
    std::vector<float> windowed(n);
    window_slice(v.slice(static_cast<int>(k)), n, c.hu_low, c.hu_high, windowed.data());
    resize_bilinear(windowed.data(), v.size[1], v.size[0], out.data() + k * plane, c.height, c.width);
  });
  return out;
}

void stack_triplets(const std::vector<float>& resized, int slices, const ModelContract& c, const std::vector<int>& ks,
                    float* out) {
  const std::size_t plane = static_cast<std::size_t>(c.height) * c.width;
  if (resized.size() != plane * static_cast<std::size_t>(slices))
    throw Error(ExitCode::internal, "stack_triplets: resized volume does not match the contract's size");
  for (std::size_t n = 0; n < ks.size(); ++n) {
    const auto idx = triplet_indices(ks[n], c.slice_offsets, slices);
    for (std::size_t ch = 0; ch < idx.size(); ++ch)
      std::copy_n(resized.data() + static_cast<std::size_t>(idx[ch]) * plane, plane,
                  out + (n * idx.size() + ch) * plane);
  }
}

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

namespace {
int floor_div2(int a) {
  return a >= 0 ? a / 2 : -((-a + 1) / 2);
}
}  // namespace

CropBox crop_box(const VertebraExtent& e, double margin) {
  const int w = e.x1 - e.x0 + 1, h = e.y1 - e.y0 + 1;
  CropBox b;
  b.side = static_cast<int>(std::ceil(std::max(w, h) * (1.0 + 2.0 * margin)));
  b.x = floor_div2(e.x0 + e.x1 + 1 - b.side);
  b.y = floor_div2(e.y0 + e.y1 + 1 - b.side);
  return b;
}

std::vector<int> select_slices(const VertebraExtent& e, int n) {
  if (n == 1) return {static_cast<int>(std::floor((e.z0 + e.z1) / 2.0 + 0.5))};
  std::vector<int> out;
  out.reserve(static_cast<std::size_t>(n));
  for (int j = 0; j < n; ++j)
    out.push_back(e.z0 + static_cast<int>(std::floor(static_cast<double>(e.z1 - e.z0) * j / (n - 1) + 0.5)));
  return out;
}

std::vector<int> vertebra_input(const Volume& v, const VertebraExtent& e, const ModelContract& c, float* out) {
  const CropBox b = crop_box(e, c.crop_margin);
  const std::vector<int> picked = select_slices(e, c.slices_per_vertebra);
  const std::size_t plane = static_cast<std::size_t>(c.height) * c.width;
  const int cols = v.size[0], rows = v.size[1];
  std::vector<float> crop(static_cast<std::size_t>(b.side) * b.side);
  const int x0 = std::max(b.x, 0), x1 = std::min(b.x + b.side, cols);
  const int y0 = std::max(b.y, 0), y1 = std::min(b.y + b.side, rows);
  for (std::size_t n = 0; n < picked.size(); ++n) {
    const auto idx = triplet_indices(picked[n], c.slice_offsets, v.size[2]);
    for (std::size_t ch = 0; ch < idx.size(); ++ch) {
      // Only the part of the slice inside the crop is windowed; the rest of the crop stays 0.
      std::fill(crop.begin(), crop.end(), 0.0f);
      const int16_t* slice = v.slice(idx[ch]);
      for (int y = y0; y < y1 && x0 < x1; ++y)
        window_slice(slice + static_cast<std::size_t>(y) * cols + x0, static_cast<std::size_t>(x1 - x0), c.hu_low,
                     c.hu_high, crop.data() + static_cast<std::size_t>(y - b.y) * b.side + (x0 - b.x));
      resize_bilinear(crop.data(), b.side, b.side, out + (n * idx.size() + ch) * plane, c.height, c.width);
    }
  }
  return picked;
}

}  // namespace cspine
