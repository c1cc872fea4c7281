// The C++ preprocessing spec on hand-checkable inputs. Parity with the Python side on real studies is
// tests/python/test_preprocess_parity.py; these pin the rules themselves.
#include <gtest/gtest.h>

#include <numeric>

#include "cspine/preprocess.h"

using namespace cspine;

TEST(Preprocess, WindowClampsAndScales) {
  const int16_t hu[] = {-2000, -500, 400, 1300, 3000};
  float out[5];
  window_slice(hu, 5, -500, 1300, out);
  EXPECT_FLOAT_EQ(out[0], 0.0f);
  EXPECT_FLOAT_EQ(out[1], 0.0f);
  EXPECT_FLOAT_EQ(out[2], 0.5f);
  EXPECT_FLOAT_EQ(out[3], 1.0f);
  EXPECT_FLOAT_EQ(out[4], 1.0f);
}

TEST(Preprocess, BilinearUpsampleFollowsPyTorch) {
  // torch.nn.functional.interpolate([[0, 1], [2, 3]], size=(4, 4), mode="bilinear", align_corners=False):
  // source coordinates (d + 0.5) / 2 - 0.5 clamped at 0 -> 0, 0.25, 0.75, 1 (and the last one clamps).
  const float in[] = {0, 1, 2, 3};
  float out[16];
  resize_bilinear(in, 2, 2, out, 4, 4);
  const float row0[] = {0.0f, 0.25f, 0.75f, 1.0f};
  for (int x = 0; x < 4; ++x) {
    EXPECT_FLOAT_EQ(out[x], row0[x]);
    EXPECT_FLOAT_EQ(out[12 + x], row0[x] + 2.0f);  // last row = second input row
    EXPECT_FLOAT_EQ(out[4 + x], row0[x] + 0.5f);   // y = 0.25
  }
}

TEST(Preprocess, BilinearDownsampleSamplesBetweenPixels) {
  // 4 -> 2: source x = 2 * (d + 0.5) - 0.5 = 0.5, 2.5: the mean of pixel pairs, no antialiasing beyond that.
  const float in[] = {0, 10, 20, 30};
  float out[2];
  resize_bilinear(in, 1, 4, out, 1, 2);
  EXPECT_FLOAT_EQ(out[0], 5.0f);
  EXPECT_FLOAT_EQ(out[1], 25.0f);
  float same[4];
  resize_bilinear(in, 1, 4, same, 1, 4);
  EXPECT_TRUE(std::equal(in, in + 4, same));
}

TEST(Preprocess, TripletsClampAtTheEnds) {
  EXPECT_EQ(triplet_indices(0, {-1, 0, 1}, 10), (std::vector<int>{0, 0, 1}));
  EXPECT_EQ(triplet_indices(9, {-1, 0, 1}, 10), (std::vector<int>{8, 9, 9}));
  EXPECT_EQ(triplet_indices(5, {-3, 0, 4}, 10), (std::vector<int>{2, 5, 9}));
}

TEST(Preprocess, ExtentsCountSlicesAndBoxes) {
  const std::array<int, 3> size{6, 5, 4};
  std::vector<uint8_t> labels(6 * 5 * 4, 0);
  auto at = [&](int i, int j, int k) -> uint8_t& { return labels[static_cast<std::size_t>((k * 5 + j) * 6 + i)]; };
  at(1, 2, 0) = 3;
  at(4, 1, 2) = 3;  // C3 on slices 0 and 2, not 1
  at(0, 0, 3) = 7;
  at(5, 4, 3) = 9;  // thoracic labels are not vertebrae C1-C7
  const auto e = vertebra_extents(labels, size);
  ASSERT_TRUE(e[2].has_value());
  EXPECT_EQ(e[2]->label, 3);
  EXPECT_EQ(e[2]->z0, 0);
  EXPECT_EQ(e[2]->z1, 2);
  EXPECT_EQ(e[2]->slices, 2);
  EXPECT_EQ(e[2]->x0, 1);
  EXPECT_EQ(e[2]->x1, 4);
  EXPECT_EQ(e[2]->y0, 1);
  EXPECT_EQ(e[2]->y1, 2);
  EXPECT_EQ(e[2]->voxels, 2u);
  ASSERT_TRUE(e[6].has_value());
  EXPECT_EQ(e[6]->slices, 1);
  for (int v : {0, 1, 3, 4, 5}) EXPECT_FALSE(e[static_cast<std::size_t>(v)].has_value()) << v;
}

TEST(Preprocess, CropBoxIsSquareCentredAndMayLeaveTheImage) {
  VertebraExtent e;
  e.x0 = 10, e.x1 = 19, e.y0 = 0, e.y1 = 3;  // 10 x 4 pixels
  const CropBox b = crop_box(e, 0.15);
  EXPECT_EQ(b.side, 13);  // ceil(10 * 1.3)
  EXPECT_EQ(b.x, 8);      // floor((10 + 19 + 1 - 13) / 2) = floor(8.5)
  EXPECT_EQ(b.y, -5);     // floor((0 + 3 + 1 - 13) / 2) = floor(-4.5)
  EXPECT_EQ(crop_box(e, 0.0).side, 10);
}

TEST(Preprocess, SlicesSpreadOverTheExtentIncludingBothEnds) {
  VertebraExtent e;
  e.z0 = 10, e.z1 = 20;
  EXPECT_EQ(select_slices(e, 3), (std::vector<int>{10, 15, 20}));
  EXPECT_EQ(select_slices(e, 5), (std::vector<int>{10, 13, 15, 18, 20}));  // 12.5 and 17.5 round up
  EXPECT_EQ(select_slices(e, 1), (std::vector<int>{15}));
  e.z1 = 11;  // more slices asked than the vertebra has: repeats, in order
  EXPECT_EQ(select_slices(e, 4), (std::vector<int>{10, 10, 11, 11}));
}

TEST(Preprocess, VertebraInputCropsWithZeroOutsideTheImage) {
  Volume v;
  v.size = {8, 8, 3};
  v.hu.assign(8 * 8 * 3, 1300);  // windowed to 1 everywhere inside the image
  ModelContract c;
  c.kind = ModelKind::classifier;
  c.height = c.width = 4;
  c.slices_per_vertebra = 2;
  c.crop_margin = 0.5;
  VertebraExtent e;
  e.z0 = 0, e.z1 = 2, e.x0 = 0, e.x1 = 1, e.y0 = 0, e.y1 = 1, e.slices = 3;  // box at the image corner
  std::vector<float> out(2 * 3 * 16, -1.0f);
  EXPECT_EQ(vertebra_input(v, e, c, out.data()), (std::vector<int>{0, 2}));
  // side 4 at (-1, -1): the first row and column of the crop are outside (0), the rest inside (1); resizing
  // 4 -> 4 copies.
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x)
      EXPECT_FLOAT_EQ(out[static_cast<std::size_t>(y * 4 + x)], (x == 0 || y == 0) ? 0.0f : 1.0f);
}
