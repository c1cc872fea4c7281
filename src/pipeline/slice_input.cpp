#include "pipeline/slice_input.h"

#include <algorithm>
#include <numeric>

#include "cspine/error.h"
#include "cspine/preprocess.h"
#include "image/opencv_resize.h"
#include "util/parallel.h"

namespace cspine {

std::vector<int> model_slice_order(const std::vector<int>& slice_numbers, SliceOrderRule rule) {
  std::vector<int> order(slice_numbers.size());
  std::iota(order.begin(), order.end(), 0);
  if (rule == SliceOrderRule::instance_number)
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return slice_numbers[static_cast<std::size_t>(a)] < slice_numbers[static_cast<std::size_t>(b)];
    });
  return order;
}

void slice_intensities(const Volume& v, int k, const ModelContract& c, double* out) {
  const std::size_t n = v.slice_voxels();
  const int16_t* s = v.slice(k);
  if (c.intensity == IntensityRule::hu_window) {
    std::vector<float> w(n);
    window_slice(s, n, c.hu_low, c.hu_high, w.data());
    std::copy(w.begin(), w.end(), out);
    return;
  }
  // The notebook's load_dicom: data - min (integers), then / max when max != 0, in float64.
  const auto [lo, hi] = std::minmax_element(s, s + n);
  const int32_t min = *lo, range = static_cast<int32_t>(*hi) - static_cast<int32_t>(*lo);
  for (std::size_t i = 0; i < n; ++i) {
    const auto d = static_cast<double>(static_cast<int32_t>(s[i]) - min);
    out[i] = range != 0 ? d / static_cast<double>(range) : d;
  }
}

std::vector<float> model_planes(const Volume& v, const std::vector<int>& order, const ModelContract& c, int threads) {
  const int rows = v.size[1], cols = v.size[0];
  const std::size_t n = v.slice_voxels(), plane = static_cast<std::size_t>(c.height) * c.width;
  std::vector<float> out(plane * order.size());
  parallel_for(order.size(), threads, [&](std::size_t i) {
    const int k = order[i];
    float* dst = out.data() + i * plane;
    if (c.resize == ResizeRule::bilinear) {
      if (c.intensity == IntensityRule::hu_window) {  // version 1's steps, in float32
        std::vector<float> w(n);
        window_slice(v.slice(k), n, c.hu_low, c.hu_high, w.data());
        resize_bilinear(w.data(), rows, cols, dst, c.height, c.width);
        return;
      }
      std::vector<double> d(n);
      slice_intensities(v, k, c, d.data());
      std::vector<float> f(d.begin(), d.end());
      resize_bilinear(f.data(), rows, cols, dst, c.height, c.width);
      return;
    }
    std::vector<double> d(n), r(plane);
    slice_intensities(v, k, c, d.data());
    opencv_resize(d.data(), rows, cols, 1, r.data(), c.height, c.width, c.resize);
    std::copy(r.begin(), r.end(), dst);  // float64 -> float32, as the model's input
  });
  return out;
}

std::vector<int> neighbour_planes(int k, const ModelContract& c, int slices) {
  if (c.edge == EdgeRule::clamp) return triplet_indices(k, c.slice_offsets, slices);
  std::vector<int> idx;
  idx.reserve(c.slice_offsets.size());
  for (int o : c.slice_offsets) {
    const int j = k + o;
    idx.push_back(j < 0 || j >= slices ? -1 : j);
  }
  return idx;
}

}  // namespace cspine
