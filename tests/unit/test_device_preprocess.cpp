// Device-side preprocessing (LibTorch ops in the backend plugin, on the CPU unless CSPINE_TEST_DEVICE says
// otherwise) against the host implementation of the same rules (src/pipeline/preprocess.cpp): the classifier
// crops, the classifier run on them, and the segmentation of a whole volume.
#ifdef CSPINE_WITH_TORCH
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <set>

#include "cspine/backend.h"
#include "cspine/error.h"
#include "cspine/predict.h"

using namespace cspine;

namespace {

// CSPINE_TEST_DEVICE=cuda runs these on a GPU (scripts/gpu-smoke.sh does, with the models found through
// CSPINE_SOURCE_DIR when the tests run away from their source tree); the CPU is the default.
std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}
const std::string kRoot = env_or("CSPINE_SOURCE_DIR", CSPINE_SOURCE_DIR);
const std::string kTinyCls = kRoot + "/models/test/tiny-cls.pt";
const std::string kSeg = kRoot + "/models/seg.pt";  // the tiny one labels noise all background
const std::string kDevice = env_or("CSPINE_TEST_DEVICE", "cpu");
// On the CPU both sides run the same float kernels; CUDA's may round differently (fused multiply-adds).
const float kCropTolerance = kDevice == "cpu" ? 1e-6f : 1e-5f, kOutputTolerance = kDevice == "cpu" ? 1e-5f : 1e-4f;

// A volume of smooth structures plus noise over the whole HU range, so windowing clamps on both sides.
Volume random_volume(int cols, int rows, int slices, unsigned seed) {
  Volume v;
  v.size = {cols, rows, slices};
  v.hu.resize(v.voxel_count());
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 150.0f);
  for (int k = 0; k < slices; ++k)
    for (int j = 0; j < rows; ++j)
      for (int i = 0; i < cols; ++i) {
        const float base = 900.0f * std::sin(0.21f * i + 0.05f * k) * std::cos(0.17f * j) + 200.0f;
        v.hu[(static_cast<std::size_t>(k) * rows + j) * cols + i] =
            static_cast<int16_t>(std::clamp(base + noise(rng), -1024.0f, 3000.0f));
      }
  return v;
}

VertebraExtent extent(int x0, int x1, int y0, int y1, int z0, int z1) {
  VertebraExtent e;
  e.label = 1;
  e.x0 = x0, e.x1 = x1, e.y0 = y0, e.y1 = y1, e.z0 = z0, e.z1 = z1;
  e.slices = z1 - z0 + 1;
  e.voxels = 1;
  return e;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

}  // namespace

TEST(DevicePreprocess, CropsEqualTheHostRule) {
  const ModelContract c = read_model_contract(kTinyCls);
  const Volume v = random_volume(70, 60, 24, 7);
  // Inside, past the top-left corner, past the bottom-right corner and the last slice (triplet clamping), a
  // crop exactly the input size (no resize), a crop larger than the whole image, and an absent vertebra.
  const std::vector<VertebraExtent> es = {extent(20, 40, 15, 30, 3, 14),  extent(0, 9, 0, 12, 0, 6),
                                          extent(55, 69, 48, 59, 17, 23), extent(10, 33, 10, 27, 5, 20),
                                          extent(0, 69, 0, 59, 0, 23)};
  std::vector<const VertebraExtent*> items;
  for (const auto& e : es) items.push_back(&e);
  items.insert(items.begin() + 2, nullptr);
  ASSERT_EQ(c.height, 32);
  EXPECT_EQ(crop_box(es[3], c.crop_margin).side, 32);  // 24 pixels wide, margin 0.15: ceil(24 * 1.3) = 32
  const CropRequest request = crop_request(c, items, v.size[2]);

  const TorchModel model(kTinyCls, kDevice, false);
  const DeviceVolume dv = model.upload(v.hu.data(), v.size[2], v.size[1], v.size[0]);
  const std::vector<float> device = device_crops(dv, request);

  const std::size_t per = static_cast<std::size_t>(c.slices_per_vertebra) * c.channels() * c.height * c.width;
  std::vector<float> host(items.size() * per, 0.0f);
  for (std::size_t i = 0; i < items.size(); ++i)
    if (items[i]) vertebra_input(v, *items[i], c, host.data() + i * per);
  ASSERT_EQ(device.size(), host.size());
  EXPECT_LE(max_abs_diff(device, host), kCropTolerance);
  // The absent item is zeros, the others are not (the comparison has something to compare).
  EXPECT_TRUE(std::all_of(device.begin() + 2 * per, device.begin() + 3 * per, [](float x) { return x == 0.0f; }));
  for (std::size_t i : {0u, 1u, 3u, 4u, 5u})
    EXPECT_GT(*std::max_element(device.begin() + i * per, device.begin() + (i + 1) * per), 0.5f) << "item " << i;

  // A one-slice shift would be caught: the same request one slice further on differs.
  CropRequest shifted = request;
  for (auto& k : shifted.indices) k = std::min(k + 1, v.size[2] - 1);
  EXPECT_GT(max_abs_diff(device_crops(dv, shifted), host), 0.05f);
}

TEST(DevicePreprocess, ClassifierOnDeviceCropsEqualsHostInput) {
  const ModelContract c = read_model_contract(kTinyCls);
  const Volume v = random_volume(64, 64, 30, 11);
  std::vector<VertebraExtent> es;
  for (int k = 0; k < 7; ++k) es.push_back(extent(5 + 4 * k, 25 + 4 * k, 8 + k, 30 + 2 * k, 2 * k, 2 * k + 9));
  std::vector<const VertebraExtent*> items;
  for (const auto& e : es) items.push_back(&e);
  items[4] = nullptr;
  const TorchModel model(kTinyCls, kDevice, false);
  const DeviceVolume dv = model.upload(v.hu.data(), v.size[2], v.size[1], v.size[0]);
  double seconds = 0;
  const auto on_device = model.classify_crops(dv, crop_request(c, items, v.size[2]), &seconds);

  const std::size_t per = static_cast<std::size_t>(c.slices_per_vertebra) * c.channels() * c.height * c.width;
  std::vector<float> x(7 * per, 0.0f);
  for (std::size_t i = 0; i < 7; ++i)
    if (items[i]) vertebra_input(v, *items[i], c, x.data() + i * per);
  const auto on_host = model.forward(x.data(), {7, c.slices_per_vertebra, c.channels(), c.height, c.width});
  ASSERT_EQ(on_device.size(), on_host.size());
  EXPECT_GT(seconds, 0.0);
  for (std::size_t o = 0; o < on_host.size(); ++o) {
    EXPECT_EQ(on_device[o].shape, on_host[o].shape);
    EXPECT_LE(max_abs_diff(on_device[o].values, on_host[o].values), kOutputTolerance) << "output " << o;
  }
}

TEST(DevicePreprocess, SegmentationOfTheVolumeEqualsHostBatches) {
  const ModelContract c = read_model_contract(kSeg);
  const Volume v = random_volume(100, 90, 21, 3);  // not square, not the model's size: resized
  const TorchModel model(kSeg, kDevice, false);
  const std::size_t plane = static_cast<std::size_t>(c.height) * c.width;
  std::vector<uint8_t> device(plane * v.size[2]);
  double seconds = 0;
  const DeviceVolume dv = model.upload(v.hu.data(), v.size[2], v.size[1], v.size[0]);
  const int64_t classes =
      model.segment_volume(dv, c, 8, device.data(), &seconds);
  EXPECT_EQ(classes, static_cast<int64_t>(c.classes.size()));

  const std::vector<float> resized = window_resize_volume(v, c, 1);
  std::vector<uint8_t> host;
  for (int s0 = 0; s0 < v.size[2]; s0 += 8) {
    const int n = std::min(8, v.size[2] - s0);
    std::vector<int> ks;
    for (int i = 0; i < n; ++i) ks.push_back(s0 + i);
    std::vector<float> batch(static_cast<std::size_t>(n) * c.channels() * plane);
    stack_triplets(resized, v.size[2], c, ks, batch.data());
    const auto out = model.forward(batch.data(), {n, c.channels(), c.height, c.width}, &kDecodeArgmax);
    host.insert(host.end(), out[0].labels.begin(), out[0].labels.end());
  }
  ASSERT_EQ(device.size(), host.size());
  std::size_t differ = 0;
  for (std::size_t i = 0; i < host.size(); ++i) differ += device[i] != host[i];
  // Inputs equal to float rounding; an argmax may flip only on a near tie.
  EXPECT_LE(differ, host.size() / 10000) << differ << " of " << host.size() << " labels differ";
  EXPECT_GT(std::set<uint8_t>(host.begin(), host.end()).size(), 1u);  // not a constant map
}

TEST(DevicePreprocess, BadRequestsAreErrors) {
  const ModelContract c = read_model_contract(kTinyCls);
  const Volume v = random_volume(40, 40, 10, 5);
  const TorchModel model(kTinyCls, kDevice, false);
  const DeviceVolume dv = model.upload(v.hu.data(), v.size[2], v.size[1], v.size[0]);
  const VertebraExtent e = extent(5, 20, 5, 20, 1, 8);
  CropRequest r = crop_request(c, {&e}, v.size[2]);
  r.indices[3] = 10;  // past the last slice
  try {
    device_crops(dv, r);
    FAIL() << "expected an error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("outside the volume"), std::string::npos) << err.what();
  }
  r.indices.pop_back();
  EXPECT_THROW(model.classify_crops(dv, r, nullptr), Error);
}
#endif  // CSPINE_WITH_TORCH
