// `cspine preprocess` through the real binary: the model checks (exit 9 with the reason) and the tensors it
// writes. Their values are compared with the Python training code in tests/python/test_preprocess_parity.py.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "support/fixtures.h"

using namespace cspine;
using namespace cspine::test;

namespace {

std::string models() {
  return std::string(CSPINE_SOURCE_DIR) + "/models/test/";
}

int run_cli(const std::string& args, std::string* err = nullptr) {
  std::string out;
  return run_command(q(CSPINE_BINARY) + " " + args, &out, err);
}

// One small synthetic study with its segmentation, written once for the suite.
struct Study {
  TempDir dir;
  std::string images, labels;
  Study() {
    EXPECT_EQ(run_cli("-q synth -o " + q(dir / "d") + " -n 1 --matrix 64 --slices 40 --test-fraction 0 --seed 3"), 0);
    for (const auto& e : fs::directory_iterator(dir.path() / "d" / "train_images")) images = e.path().string();
    labels = (dir.path() / "d" / "segmentations" / (fs::path(images).filename().string() + ".nii")).string();
  }
};

Study& study() {
  static Study s;
  return s;
}

// The shape stored in a .npy header, e.g. "(7, 8, 3, 32, 32)".
std::string npy_shape(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::string head(128, '\0');
  f.read(head.data(), 128);
  const auto a = head.find("'shape': ("), b = head.find(')', a);
  return head.substr(a + 9, b - a - 8);
}

}  // namespace

TEST(PreprocessCli, BrokenModelsExitNineWithTheReason) {
  Study& s = study();
  TempDir tmp;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {models() + "broken-future-contract.pt", "newer than this cspine"},
      {models() + "no-such-model.pt", "does not exist"},
#ifdef CSPINE_WITH_TORCH
      {models() + "broken-no-contract.pt", "no cspine.json"},
      {models() + "broken-not-a-model.pt", "not a TorchScript model"},
#endif
  };
  for (const auto& [model, expect] : cases) {
    std::string err;
    const int rc = run_cli("preprocess " + q(s.images) + " -m " + q(model) + " -o " + q(tmp / "o"), &err);
#ifndef CSPINE_WITH_TORCH
    if (model.find("future") != std::string::npos) {  // reading the archive needs the backend
      EXPECT_NE(rc, 0);
      continue;
    }
#endif
    EXPECT_EQ(rc, 9) << model << ": " << err;
    EXPECT_NE(err.find(expect), std::string::npos) << err;
    EXPECT_NE(err.find(model), std::string::npos) << "the message names the file: " << err;
  }
}

#ifdef CSPINE_WITH_TORCH
TEST(PreprocessCli, WritesTheContractsShapes) {
  Study& s = study();
  TempDir tmp;
  ASSERT_EQ(run_cli("-q preprocess " + q(s.images) + " -m " + q(models() + "tiny-seg.pt") + " -o " + q(tmp / "seg") +
                    " --slices 0,7,39"),
            0);
  EXPECT_EQ(npy_shape(tmp.path() / "seg" / "seg_input.npy"), "(3, 3, 64, 64)");
  ASSERT_EQ(run_cli("-q preprocess " + q(s.images) + " -m " + q(models() + "tiny-cls.pt") + " --labels " + q(s.labels) +
                    " -o " + q(tmp / "cls")),
            0);
  EXPECT_EQ(npy_shape(tmp.path() / "cls" / "cls_input.npy"), "(7, 8, 3, 32, 32)");
  std::ifstream f(tmp.path() / "cls" / "preprocess.json");
  const auto j = nlohmann::json::parse(f);
  ASSERT_EQ(j["vertebrae"].size(), 7u);
  for (const auto& v : j["vertebrae"]) {
    ASSERT_FALSE(v.is_null()) << "every vertebra of a synthetic study is labelled";
    EXPECT_EQ(v["picked"].size(), 8u);
    EXPECT_GE(v["picked"][0].get<int>(), v["z"][0].get<int>());
    EXPECT_LE(v["picked"][7].get<int>(), v["z"][1].get<int>());
  }
}

TEST(PreprocessCli, UsageErrors) {
  Study& s = study();
  TempDir tmp;
  std::string err;
  EXPECT_EQ(run_cli("preprocess " + q(s.images) + " -m " + q(models() + "tiny-cls.pt") + " -o " + q(tmp / "o"), &err),
            2);
  EXPECT_NE(err.find("--labels"), std::string::npos) << err;
  EXPECT_EQ(run_cli("preprocess " + q(s.images) + " -m " + q(models() + "tiny-seg.pt") + " -o " + q(tmp / "o") +
                        " --slices 3,x",
                    &err),
            2);
  EXPECT_EQ(run_cli("preprocess " + q(s.images) + " -m " + q(models() + "tiny-seg.pt") + " -o " + q(tmp / "o") +
                        " --slices 40",
                    &err),
            2);
  EXPECT_NE(err.find("outside"), std::string::npos) << err;
}
#endif
