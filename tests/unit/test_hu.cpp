// Stored value -> HU: sign, BitsStored, HighBit, padding, rescale and clamping.
#include <gtest/gtest.h>

#include <cmath>

#include "dicom/pixel_decode.h"

using namespace cspine;
using cspine::dicom::stored_to_hu;

namespace {
SliceHeader header(int bits_allocated, int bits_stored, bool is_signed, double slope, double intercept) {
  SliceHeader h;
  h.bits_allocated = bits_allocated;
  h.bits_stored = bits_stored;
  h.high_bit = bits_stored - 1;
  h.pixel_representation = is_signed ? 1 : 0;
  h.rescale_slope = slope;
  h.rescale_intercept = intercept;
  return h;
}
}  // namespace

TEST(StoredToHu, UnsignedWithIntercept) {
  const auto h = header(16, 12, false, 1.0, -1024.0);
  const uint16_t raw[] = {0, 1024, 2000, 4095};
  int16_t out[4];
  EXPECT_EQ(stored_to_hu(raw, 16, 4, h, -1024, out), 0u);
  EXPECT_EQ(out[0], -1024);
  EXPECT_EQ(out[1], 0);
  EXPECT_EQ(out[2], 976);
  EXPECT_EQ(out[3], 3071);
}

TEST(StoredToHu, BitsAboveBitsStoredAreIgnoredAndNoticed) {
  // Overlay bits or garbage in the unused high bits must not change the value, but are reported.
  const auto h = header(16, 12, false, 1.0, -1024.0);
  const uint16_t raw[] = {static_cast<uint16_t>(0xF000 | 1024)};
  int16_t out[1];
  bool stray = false;
  stored_to_hu(raw, 16, 1, h, -1024, out, &stray);
  EXPECT_EQ(out[0], 0);
  EXPECT_TRUE(stray);
  const uint16_t clean[] = {4095, 0, 1024};
  int16_t out3[3];
  bool stray_clean = false;
  stored_to_hu(clean, 16, 3, h, -1024, out3, &stray_clean);
  EXPECT_FALSE(stray_clean);
}

TEST(StoredToHu, SignedTwelveBitSignExtension) {
  const auto h = header(16, 12, true, 1.0, 0.0);
  const uint16_t raw[] = {0x0FFF /* -1 */, 0x0800 /* -2048 */, 0x07FF /* 2047 */, 0xFFFF /* -1 */};
  int16_t out[4];
  stored_to_hu(raw, 16, 4, h, -1024, out);
  EXPECT_EQ(out[0], -1);
  EXPECT_EQ(out[1], -2048);
  EXPECT_EQ(out[2], 2047);
  EXPECT_EQ(out[3], -1);
}

TEST(StoredToHu, SignExtendedHighBitsAreNotStray) {
  const auto h = header(16, 12, true, 1.0, 0.0);
  const uint16_t raw[] = {0xFFFF /* -1, sign-extended to 16 bits */, 5};
  int16_t out[2];
  bool stray = false;
  stored_to_hu(raw, 16, 2, h, -1024, out, &stray);
  EXPECT_EQ(out[0], -1);
  EXPECT_FALSE(stray);
}

TEST(StoredToHu, SignedSixteenBit) {
  const auto h = header(16, 16, true, 1.0, -1024.0);
  const int16_t values[] = {-2000, 0, 1024, 3000};
  int16_t out[4];
  stored_to_hu(values, 16, 4, h, -1024, out);
  EXPECT_EQ(out[0], -3024);
  EXPECT_EQ(out[1], -1024);
  EXPECT_EQ(out[2], 0);
  EXPECT_EQ(out[3], 1976);
}

TEST(StoredToHu, HighBitShift) {
  // 12 bits stored in bits 15..4 (HighBit 15): the value must be shifted down.
  auto h = header(16, 12, false, 1.0, 0.0);
  h.high_bit = 15;
  const uint16_t raw[] = {static_cast<uint16_t>(100 << 4)};
  int16_t out[1];
  stored_to_hu(raw, 16, 1, h, -1024, out);
  EXPECT_EQ(out[0], 100);
}

TEST(StoredToHu, NonIntegerSlopeRounds) {
  const auto h = header(16, 12, false, 2.0002442, -4047.0);
  const uint16_t raw[] = {0, 2023, 4095};
  int16_t out[3];
  stored_to_hu(raw, 16, 3, h, -1024, out);
  EXPECT_EQ(out[0], -4047);
  EXPECT_EQ(out[1], static_cast<int16_t>(std::lround(2023 * 2.0002442 - 4047.0)));
  EXPECT_EQ(out[2], static_cast<int16_t>(std::lround(4095 * 2.0002442 - 4047.0)));
}

TEST(StoredToHu, EightBit) {
  const auto h = header(8, 8, false, 32.1216, -4047.0);
  const uint8_t raw[] = {0, 126, 255};
  int16_t out[3];
  stored_to_hu(raw, 8, 3, h, -1024, out);
  EXPECT_EQ(out[0], -4047);
  EXPECT_EQ(out[1], static_cast<int16_t>(std::lround(126 * 32.1216 - 4047.0)));
  EXPECT_EQ(out[2], static_cast<int16_t>(std::lround(255 * 32.1216 - 4047.0)));
}

TEST(StoredToHu, PaddingBecomesAir) {
  auto h = header(16, 16, true, 1.0, -1024.0);
  h.padding_value = -2000;
  const int16_t values[] = {-2000, -1999, 0};
  int16_t out[3];
  stored_to_hu(values, 16, 3, h, -1000, out);
  EXPECT_EQ(out[0], -1000);  // padding -> chosen air value, not -3024
  EXPECT_EQ(out[1], -3023);
  EXPECT_EQ(out[2], -1024);
}

TEST(StoredToHu, PaddingRange) {
  auto h = header(16, 16, false, 1.0, -1024.0);
  h.padding_value = 0;
  h.padding_range_limit = 10;
  const uint16_t raw[] = {0, 5, 10, 11};
  int16_t out[4];
  stored_to_hu(raw, 16, 4, h, -1024, out);
  EXPECT_EQ(out[0], -1024);
  EXPECT_EQ(out[1], -1024);
  EXPECT_EQ(out[2], -1024);
  EXPECT_EQ(out[3], -1013);
}

TEST(StoredToHu, ClampsAndCounts) {
  const auto h = header(16, 16, false, 1.0, 0.0);
  const uint16_t raw[] = {65535, 32767, 40000};
  int16_t out[3];
  EXPECT_EQ(stored_to_hu(raw, 16, 3, h, -1024, out), 2u);
  EXPECT_EQ(out[0], 32767);
  EXPECT_EQ(out[1], 32767);
}
