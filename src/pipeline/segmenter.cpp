#include "pipeline/segmenter.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>

#include "cspine/error.h"
#include "cspine/preprocess.h"
#include "pipeline/shapes.h"
#include "pipeline/slice_input.h"
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

std::vector<float> Segmenter::host_input(const Volume& volume, const ModelContract& contract, int threads,
                                         const std::vector<int>& order) {
  return model_planes(volume, order, contract, threads);
}

std::vector<float> Segmenter::batch_input(const std::vector<float>& host_input, int slices, const ModelContract& c,
                                          const std::vector<int>& ks) {
  const std::size_t plane = static_cast<std::size_t>(c.height) * static_cast<std::size_t>(c.width);
  if (host_input.size() != plane * static_cast<std::size_t>(slices))
    throw Error(ExitCode::internal, "batch_input: resized volume does not match the contract's size");
  std::vector<float> x(ks.size() * static_cast<std::size_t>(c.channels()) * plane, 0.0f);
  for (std::size_t n = 0; n < ks.size(); ++n) {
    const auto idx = neighbour_planes(ks[n], c, slices);
    for (std::size_t ch = 0; ch < idx.size(); ++ch)
      if (idx[ch] >= 0)  // -1: a plane of zeros (edge rule "zeros")
        std::copy_n(host_input.data() + static_cast<std::size_t>(idx[ch]) * plane, plane,
                    x.data() + (n * idx.size() + ch) * plane);
  }
  return x;
}

LabelGrid Segmenter::segment(const Volume& v, const std::vector<float>& host_input, const std::vector<int>& order,
                             const DeviceVolume* on_device, StageSeconds& seconds) const {
  const ModelContract& sc = contract_;
  LabelGrid grid;
  grid.cols = sc.width;
  grid.rows = sc.height;
  grid.slices = v.size[2];
  const std::size_t plane = static_cast<std::size_t>(sc.height) * static_cast<std::size_t>(sc.width);
  grid.labels.resize(plane * static_cast<std::size_t>(grid.slices));
  const auto expect_channels = [&](int64_t channels) {
    if (channels != static_cast<int64_t>(sc.channel_labels.size()))
      throw ModelError("segmentation model '" + model_.path() + "' returned " + std::to_string(channels) +
                       " classes (output channels), its contract expects " + std::to_string(sc.channel_labels.size()) +
                       " (output.channel_labels, or one per output.classes)");
  };
  if (on_device) {  // version-1 rules only (Predictor checks): position order, argmax, identity labels
    expect_channels(model_.segment_volume(*on_device, sc, batch_size_, grid.labels.data(), &seconds.segment_model));
    return grid;
  }
  if (order.size() != static_cast<std::size_t>(grid.slices))
    throw Error(ExitCode::internal, "segment: slice order does not match the volume");
  // Channel index -> label (CSPINE_NO_LABEL: below the sigmoid threshold -> background).
  std::array<uint8_t, 256> label_of{};
  for (std::size_t c = 0; c < sc.channel_labels.size(); ++c) label_of[c] = static_cast<uint8_t>(sc.channel_labels[c]);
  const cspine_decode decode{sc.activation == ActivationRule::sigmoid ? CSPINE_DECODE_SIGMOID : CSPINE_DECODE_ARGMAX,
                             sc.threshold};
  for (int s0 = 0; s0 < grid.slices; s0 += batch_size_) {
    const int n = std::min(batch_size_, grid.slices - s0);
    std::vector<int> ks(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) ks[static_cast<std::size_t>(i)] = s0 + i;
    const std::vector<float> batch = batch_input(host_input, grid.slices, sc, ks);
    const auto tm = std::chrono::steady_clock::now();
    const auto out = model_.forward(batch.data(), {n, sc.channels(), sc.height, sc.width}, &decode);
    seconds.segment_model += std::chrono::duration<double>(std::chrono::steady_clock::now() - tm).count();
    const HostTensor& lab = out.at(0);
    expect_channels(lab.channels);
    if (lab.shape != std::vector<int64_t>{n, sc.height, sc.width})
      throw ModelError("segmentation model '" + model_.path() + "' returned labels of shape " + shape_text(lab.shape) +
                       ", expected " + shape_text({n, sc.height, sc.width}));
    for (int i = 0; i < n; ++i) {  // model slice s0 + i is volume slice order[s0 + i]
      const uint8_t* src = lab.labels.data() + static_cast<std::size_t>(i) * plane;
      uint8_t* dst = grid.labels.data() + static_cast<std::size_t>(order[static_cast<std::size_t>(s0 + i)]) * plane;
      for (std::size_t p = 0; p < plane; ++p) dst[p] = src[p] == CSPINE_NO_LABEL ? 0 : label_of[src[p]];
    }
    throw_if_interrupted();
  }
  return grid;
}

}  // namespace cspine
