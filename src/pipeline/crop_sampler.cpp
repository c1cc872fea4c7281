#include "pipeline/crop_sampler.h"

#include <algorithm>
#include <cmath>

#include "cspine/error.h"
#include "cspine/preprocess.h"
#include "image/opencv_resize.h"
#include "pipeline/slice_input.h"
#include "util/parallel.h"

namespace cspine {

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

CropRequest crop_request(const ModelContract& c, const std::vector<const VertebraExtent*>& items, int slices) {
  CropRequest r;
  r.hu_low = c.hu_low;
  r.hu_high = c.hu_high;
  r.items = static_cast<int64_t>(items.size());
  r.slices_per_item = c.slices_per_vertebra;
  r.channels = c.channels();
  r.height = c.height;
  r.width = c.width;
  for (const VertebraExtent* e : items) {
    if (!e) {  // zeros
      r.boxes.insert(r.boxes.end(), {0, 0, 0});
      r.indices.insert(r.indices.end(), static_cast<std::size_t>(r.slices_per_item * r.channels), 0);
      continue;
    }
    const CropBox b = crop_box(*e, c.crop_margin);
    r.boxes.insert(r.boxes.end(), {b.x, b.y, b.side});
    for (int k : select_slices(*e, c.slices_per_vertebra))
      for (int idx : triplet_indices(k, c.slice_offsets, slices)) r.indices.push_back(idx);
  }
  return r;
}

std::array<VertebraResult, 7> plan_vertebrae(const std::array<std::optional<VertebraExtent>, 7>& extents,
                                             const ModelContract& cc, bool thin_fallback) {
  std::array<VertebraResult, 7> plan;
  for (std::size_t k = 0; k < plan.size(); ++k) {
    VertebraResult& vr = plan[k];
    vr.extent = extents[k];
    if (!vr.extent) {
      vr.fallback = Fallback::not_found;
    } else if (thin_fallback && vr.extent->slices < cc.min_slices) {
      vr.fallback = Fallback::too_few_slices;
    } else {
      vr.crop = crop_box(*vr.extent, cc.crop_margin);
      vr.picked = select_slices(*vr.extent, cc.slices_per_vertebra);
    }
  }
  return plan;
}

namespace {
std::vector<const VertebraExtent*> classified(const std::array<VertebraResult, 7>& plan) {
  std::vector<const VertebraExtent*> items;
  for (const auto& vr : plan) items.push_back(vr.fallback == Fallback::none ? &*vr.extent : nullptr);
  return items;
}
}  // namespace

std::vector<float> host_crops(const Volume& v, const std::array<VertebraResult, 7>& plan, const ModelContract& cc,
                              int threads) {
  const std::size_t per = static_cast<std::size_t>(cc.slices_per_vertebra) * static_cast<std::size_t>(cc.channels()) *
                          static_cast<std::size_t>(cc.height) * static_cast<std::size_t>(cc.width);
  const auto items = classified(plan);
  std::vector<float> x(items.size() * per, 0.0f);
  parallel_for(items.size(), threads, [&](std::size_t k) {
    if (items[k]) vertebra_input(v, *items[k], cc, x.data() + k * per);
  });
  return x;
}

CropRequest device_crop_request(const std::array<VertebraResult, 7>& plan, const ModelContract& cc, int slices) {
  return crop_request(cc, classified(plan), slices);
}

}  // namespace cspine

namespace cspine {

std::vector<int> classified_vertebrae(const std::array<VertebraResult, 7>& plan) {
  std::vector<int> items;
  for (int v = 0; v < 7; ++v)
    if (plan[static_cast<std::size_t>(v)].fallback == Fallback::none) items.push_back(v);
  return items;
}

std::vector<float> host_box_crops(const Volume& v, const std::array<VertebraResult, 7>& plan, const StudyBox& box,
                                  const ModelContract& cc, int threads) {
  if (cc.channels() != 1 || cc.slice_offsets[0] != 0)
    throw ModelError("a study_box classifier contract must have input.slice_offsets [0]");
  const int n = cc.slices_per_vertebra, rows = v.size[1], cols = v.size[0];
  const std::size_t plane = static_cast<std::size_t>(cc.height) * cc.width;
  const std::vector<int> items = classified_vertebrae(plan);
  std::vector<float> x(items.size() * static_cast<std::size_t>(n) * plane, 0.0f);
  const int gr = box.grid_rows, gc = box.grid_cols, br = box.row1 - box.row0, bc = box.col1 - box.col0;
  if (br < 1 || bc < 1 || box.row0 < 0 || box.col0 < 0 || box.row1 > gr || box.col1 > gc)
    throw Error(ExitCode::internal, "host_box_crops: the study box lies outside its grid");
  parallel_for(items.size(), threads, [&](std::size_t item) {
    const VertebraResult& vr = plan[static_cast<std::size_t>(items[item])];
    // The notebook's H x W x N stack (zeros after the picked slices), resized to the segmentation grid, cropped to
    // the box, resized to the model's size: OpenCV on float64 throughout, float32 at the end.
    std::vector<double> stack(static_cast<std::size_t>(rows) * cols * n, 0.0), slice(static_cast<std::size_t>(rows) * cols);
    for (std::size_t j = 0; j < vr.picked.size() && j < static_cast<std::size_t>(n); ++j) {
      slice_intensities(v, vr.picked[j], cc, slice.data());
      for (std::size_t p = 0; p < slice.size(); ++p) stack[p * static_cast<std::size_t>(n) + j] = slice[p];
    }
    std::vector<double> grid(static_cast<std::size_t>(gr) * gc * n);
    opencv_resize(stack.data(), rows, cols, n, grid.data(), gr, gc, cc.resize);
    std::vector<double> crop(static_cast<std::size_t>(br) * bc * n);
    for (int r = 0; r < br; ++r)
      std::copy_n(grid.data() + (static_cast<std::size_t>(box.row0 + r) * gc + box.col0) * n,
                  static_cast<std::size_t>(bc) * n, crop.data() + static_cast<std::size_t>(r) * bc * n);
    std::vector<double> out(plane * n);
    opencv_resize(crop.data(), br, bc, n, out.data(), cc.height, cc.width, cc.resize);
    float* dst = x.data() + item * static_cast<std::size_t>(n) * plane;
    for (std::size_t p = 0; p < plane; ++p)
      for (int j = 0; j < n; ++j) dst[static_cast<std::size_t>(j) * plane + p] = static_cast<float>(out[p * n + j]);
  });
  return x;
}

}  // namespace cspine
