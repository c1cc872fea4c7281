// Ordering and geometry from headers alone: no files, no decoding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "cspine/dicom.h"
#include "cspine/error.h"

using namespace cspine;

namespace {

SliceHeader slice(double z, int instance, std::array<double, 6> o = {1, 0, 0, 0, 1, 0}, std::array<double, 3> xy = {0, 0, 0}) {
  SliceHeader h;
  h.path = "/x/file" + std::to_string(instance);
  h.instance_number = instance;
  h.orientation = o;
  h.position = std::array<double, 3>{xy[0], xy[1], z};
  return h;
}

bool has_code(const Warnings& ws, const std::string& code) {
  return std::any_of(ws.begin(), ws.end(), [&](const Warning& w) { return w.code == code; });
}

}  // namespace

TEST(SliceOrder, SortsByPositionNotByInstanceNumberOrInput) {
  std::vector<SliceHeader> s;
  const std::vector<double> zs = {5, -5, 0, 10, 2.5, 7.5, -2.5};
  for (std::size_t i = 0; i < zs.size(); ++i) s.push_back(slice(zs[i], static_cast<int>(100 - i)));
  const SliceOrder o = order_slices(s);
  ASSERT_EQ(o.order.size(), zs.size());
  for (std::size_t k = 1; k < o.positions.size(); ++k) EXPECT_LT(o.positions[k - 1], o.positions[k]);
  EXPECT_DOUBLE_EQ(o.positions.front(), -5.0);
  EXPECT_DOUBLE_EQ(o.spacing, 2.5);
  EXPECT_FALSE(has_code(o.warnings, warn::uneven_spacing));
  EXPECT_FALSE(has_code(o.warnings, warn::missing_slices));
}

TEST(SliceOrder, HeadFirstNumberingIsRecordedNotWarned) {
  // Half of the RSNA studies are numbered from the head down: a fact about the series, not an anomaly.
  std::vector<SliceHeader> s;
  for (int k = 0; k < 6; ++k) s.push_back(slice(k * 1.0, 6 - k));
  const SliceOrder o = order_slices(s);
  EXPECT_TRUE(o.reversed_numbering);
  EXPECT_FALSE(has_code(o.warnings, warn::reversed_order));
  EXPECT_EQ(o.order.size(), 6u);

  std::vector<SliceHeader> fwd;
  for (int k = 0; k < 6; ++k) fwd.push_back(slice(k * 1.0, k + 1));
  EXPECT_FALSE(order_slices(fwd).reversed_numbering);
  EXPECT_FALSE(has_code(order_slices(fwd).warnings, warn::reversed_order));
}

TEST(SliceOrder, NumberingThatRunsBothWaysIsWarnedAndOrderedByPosition) {
  std::vector<SliceHeader> s;
  const std::vector<int> numbers = {3, 1, 2, 6, 5, 4};  // renumbered or merged files
  for (int k = 0; k < 6; ++k) s.push_back(slice(k * 1.0, numbers[static_cast<std::size_t>(k)]));
  const SliceOrder o = order_slices(s);
  EXPECT_TRUE(has_code(o.warnings, warn::reversed_order));
  for (std::size_t k = 1; k < o.positions.size(); ++k) EXPECT_LT(o.positions[k - 1], o.positions[k]);
}

TEST(SliceOrder, ProjectsOnTheNormalForObliqueSeries) {
  // Sagittal-ish orientation: row along y, column along -z => normal along -x (row x col).
  std::array<double, 6> o{0, 1, 0, 0, 0, -1};
  std::vector<SliceHeader> s;
  for (int k = 0; k < 5; ++k) {
    SliceHeader h = slice(0, k + 1, o);
    h.position = std::array<double, 3>{-2.0 * k, 3.0, 7.0};  // moves along -x by 2 mm
    s.push_back(h);
  }
  std::shuffle(s.begin(), s.end(), std::mt19937(3));
  const SliceOrder r = order_slices(s);
  EXPECT_NEAR(r.normal[0], -1.0, 1e-12);
  EXPECT_NEAR(r.spacing, 2.0, 1e-12);
  // ascending along the normal (-x) means x decreasing: instance 5 (x=-8) comes last, instance 1 first
  EXPECT_EQ(s[r.order.back()].instance_number.value(), 5);
  EXPECT_EQ(s[r.order.front()].instance_number.value(), 1);
  EXPECT_NEAR(r.tilt_degrees, 0.0, 1e-9);
}

TEST(SliceOrder, DuplicatesKeepOneSlice) {
  std::vector<SliceHeader> s;
  for (int k = 0; k < 5; ++k) s.push_back(slice(k * 1.5, k + 1));
  s.push_back(slice(3.0, 50));  // same position as instance 3
  const SliceOrder o = order_slices(s);
  EXPECT_EQ(o.order.size(), 5u);
  EXPECT_TRUE(has_code(o.warnings, warn::duplicate_position));
  // The kept one is the lower InstanceNumber.
  for (auto i : o.order) EXPECT_NE(s[i].instance_number.value(), 50);
}

TEST(SliceOrder, MissingSliceReportedWithWhere) {
  std::vector<SliceHeader> s;
  for (int k = 0; k < 10; ++k)
    if (k != 4) s.push_back(slice(k * 0.8, k + 1));
  const SliceOrder o = order_slices(s);
  EXPECT_NEAR(o.spacing, 0.8, 1e-9);
  ASSERT_TRUE(has_code(o.warnings, warn::missing_slices));
  const auto w = std::find_if(o.warnings.begin(), o.warnings.end(), [](auto& x) { return x.code == warn::missing_slices; });
  EXPECT_NE(w->message.find("file4"), std::string::npos) << w->message;  // slice before the gap
  EXPECT_NE(w->message.find("file6"), std::string::npos) << w->message;  // slice after the gap
  EXPECT_TRUE(has_code(o.warnings, warn::uneven_spacing));
  EXPECT_NEAR(o.max_gap, 1.6, 1e-9);
}

TEST(SliceOrder, SpacingComesFromPositionsNotThickness) {
  std::vector<SliceHeader> s;
  for (int k = 0; k < 4; ++k) {
    SliceHeader h = slice(k * 0.625, k + 1);
    h.slice_thickness = 1.25;  // overlapping reconstruction
    s.push_back(h);
  }
  EXPECT_NEAR(order_slices(s).spacing, 0.625, 1e-12);
}

TEST(SliceOrder, GantryTiltMeasuredFromPositions) {
  // Positions advance along z but also along y: tilt = atan(dy/dz).
  const double tilt = 15.0 * 3.14159265358979 / 180.0;
  std::array<double, 6> o{1, 0, 0, 0, std::cos(tilt), -std::sin(tilt)};
  std::vector<SliceHeader> s;
  for (int k = 0; k < 8; ++k) {
    SliceHeader h = slice(0, k + 1, o);
    h.position = std::array<double, 3>{0, 0, 2.0 * k};  // straight up the table
    s.push_back(h);
  }
  const SliceOrder r = order_slices(s);
  EXPECT_NEAR(r.tilt_degrees, 15.0, 1e-6);
  EXPECT_TRUE(has_code(r.warnings, warn::gantry_tilt));
  EXPECT_NEAR(r.spacing, 2.0 * std::cos(tilt), 1e-9);
}

TEST(SliceOrder, RefusesSlicesWithoutPosition) {
  std::vector<SliceHeader> s{slice(0, 1), slice(1, 2)};
  s[1].position.reset();
  try {
    order_slices(s);
    FAIL() << "expected SeriesError";
  } catch (const SeriesError& e) {
    EXPECT_NE(std::string(e.what()).find("ImagePositionPatient"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("file2"), std::string::npos);
  }
}
