#include "pipeline/segmenter.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "cspine/error.h"
#include "cspine/preprocess.h"
#include "pipeline/shapes.h"
#include "util/interrupt.h"
#include "util/parallel.h"

namespace cspine {

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

std::vector<float> Segmenter::host_input(const Volume& volume, const ModelContract& contract, int threads) {
  return window_resize_volume(volume, contract, threads);
}

std::vector<float> Segmenter::batch_input(const std::vector<float>& host_input, int slices, const ModelContract& c,
                                          const std::vector<int>& ks) {
  std::vector<float> x(ks.size() * static_cast<std::size_t>(c.channels()) * static_cast<std::size_t>(c.height) *
                       static_cast<std::size_t>(c.width));
  stack_triplets(host_input, slices, c, ks, x.data());
  return x;
}

LabelGrid Segmenter::segment(const Volume& v, const std::vector<float>& host_input, const DeviceVolume* on_device,
                             StageSeconds& seconds) const {
  const ModelContract& sc = contract_;
  LabelGrid grid;
  grid.cols = sc.width;
  grid.rows = sc.height;
  grid.slices = v.size[2];
  const std::size_t plane = static_cast<std::size_t>(sc.height) * static_cast<std::size_t>(sc.width);
  grid.labels.resize(plane * static_cast<std::size_t>(grid.slices));
  const auto expect_classes = [&](int64_t classes) {
    if (classes != static_cast<int64_t>(sc.classes.size()))
      throw ModelError("segmentation model '" + model_.path() + "' returned " + std::to_string(classes) +
                       " classes, its contract lists " + std::to_string(sc.classes.size()));
  };
  if (on_device) {
    expect_classes(model_.segment_volume(*on_device, sc, batch_size_, grid.labels.data(), &seconds.segment_model));
    return grid;
  }
  for (int s0 = 0; s0 < grid.slices; s0 += batch_size_) {
    const int n = std::min(batch_size_, grid.slices - s0);
    std::vector<int> ks(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) ks[static_cast<std::size_t>(i)] = s0 + i;
    const std::vector<float> batch = batch_input(host_input, grid.slices, sc, ks);
    const auto tm = std::chrono::steady_clock::now();
    const auto out = model_.forward(batch.data(), {n, sc.channels(), sc.height, sc.width}, /*argmax_first=*/true);
    seconds.segment_model += std::chrono::duration<double>(std::chrono::steady_clock::now() - tm).count();
    const HostTensor& lab = out.at(0);
    expect_classes(lab.channels);
    if (lab.shape != std::vector<int64_t>{n, sc.height, sc.width})
      throw ModelError("segmentation model '" + model_.path() + "' returned labels of shape " + shape_text(lab.shape) +
                       ", expected " + shape_text({n, sc.height, sc.width}));
    std::copy(lab.labels.begin(), lab.labels.end(), grid.labels.begin() + static_cast<std::ptrdiff_t>(s0 * plane));
    throw_if_interrupted();
  }
  return grid;
}

}  // namespace cspine
