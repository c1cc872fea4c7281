// Numbers read from untrusted CSV and JSON files are range-checked before they are converted (issue 14; found
// by fuzz_csv: a bounding-box slice_number of 1e10 was cast to int, which is undefined behaviour).
#include <gtest/gtest.h>

#include <fstream>

#include "cspine/error.h"
#include "eval/inputs.h"
#include "support/fixtures.h"

using namespace cspine;
using namespace cspine::test;

TEST(UntrustedReaders, HugeBoxSliceNumberIsAnInputError) {
  TempDir tmp;
  for (const std::string v : {"1e10", "-1e10", "3000000000", "1e308"}) {
    std::ofstream(tmp / "boxes.csv") << "StudyInstanceUID,slice_number\n1.2.3,5\n1.2.3," << v << "\n";
    try {
      eval::read_box_slices(tmp / "boxes.csv");
      FAIL() << v << " accepted";
    } catch (const InvalidInputError& e) {
      EXPECT_NE(std::string(e.what()).find("boxes.csv:3"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
    }
  }
  std::ofstream(tmp / "boxes.csv") << "StudyInstanceUID,slice_number\n1.2.3,5\n1.2.3,-2\n";
  const auto ok = eval::read_box_slices(tmp / "boxes.csv");
  ASSERT_EQ(ok.at("1.2.3").size(), 2u);
  EXPECT_EQ(ok.at("1.2.3")[1], -2);
}

TEST(UntrustedReaders, HugeReportSliceNumbersAreIgnored) {
  TempDir tmp;
  std::ofstream(tmp / "r.json") << R"({"studies":[{"study_uid":"1.2.3","vertebrae":{
      "C1":{"probability":0.5,"key_slice":{"slice_number":1e300},"slice_range":[1e20, 3]},
      "C2":{"key_slice":{"slice_number":12},"slice_range":[30, 10]}}}]})";
  const auto r = eval::read_report(tmp / "r.json");
  const auto& st = r.at("1.2.3");
  ASSERT_TRUE(st[0].has_value());
  EXPECT_FALSE(st[0]->key_slice_number.has_value());
  EXPECT_FALSE(st[0]->slice_range.has_value());
  ASSERT_TRUE(st[1].has_value());
  EXPECT_EQ(st[1]->key_slice_number, 12);
  EXPECT_EQ((*st[1]->slice_range)[0], 10);
}
