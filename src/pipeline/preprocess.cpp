// The preprocessing spec (see include/cspine/preprocess.h). Float arithmetic follows PyTorch's CPU kernels
// operation by operation, so the Python side gives the same values to within rounding.
#include "cspine/preprocess.h"

#include <algorithm>
#include <cmath>

#include "cspine/error.h"
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

}  // namespace cspine
