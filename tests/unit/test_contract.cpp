// The model contract parser: a valid document round-trips its fields; each kind of mistake is refused with a
// message naming the field (the same rules as scripts/cspine_models/contract.py).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cspine/contract.h"
#include "cspine/error.h"

using namespace cspine;
using nlohmann::json;

namespace {

json classifier() {
  return json::parse(R"({
    "format": "cspine-model", "contract_version": 1, "kind": "classifier",
    "input": {"channels": 3, "slice_offsets": [-1, 0, 1], "size": [96, 80], "hu_window": [-500, 1300],
              "resize": "bilinear", "layout": "VNCHW", "slices_per_vertebra": 24, "crop_margin": 0.15, "min_slices": 5},
    "output": {"vertebrae": ["C1","C2","C3","C4","C5","C6","C7"], "activation": "sigmoid",
               "outputs": ["logit", "attention"], "prior": [0.07,0.14,0.04,0.05,0.08,0.14,0.2],
               "patient_overall": "noisy_or"},
    "provenance": {"training_data": "synthetic"}})");
}

json segmentation() {
  return json::parse(R"({
    "format": "cspine-model", "contract_version": 1, "kind": "segmentation",
    "input": {"channels": 3, "slice_offsets": [-1, 0, 1], "size": [128, 128], "hu_window": [-500, 1300]},
    "output": {"classes": ["background","C1","C2","C3","C4","C5","C6","C7","T1-T3"], "activation": "softmax"}})");
}

std::string error_of(const json& j) {
  try {
    parse_contract(j.dump(), "m.pt");
  } catch (const ModelError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Contract, ValidDocumentsParse) {
  const ModelContract c = parse_contract(classifier().dump(), "m.pt");
  EXPECT_EQ(c.kind, ModelKind::classifier);
  EXPECT_EQ(c.height, 96);
  EXPECT_EQ(c.width, 80);
  EXPECT_EQ(c.channels(), 3);
  EXPECT_EQ(c.slices_per_vertebra, 24);
  EXPECT_DOUBLE_EQ(c.crop_margin, 0.15);
  EXPECT_DOUBLE_EQ(c.prior[6], 0.2);
  EXPECT_DOUBLE_EQ(c.hu_low, -500);
  const ModelContract s = parse_contract(segmentation().dump(), "s.pt");
  EXPECT_EQ(s.kind, ModelKind::segmentation);
  EXPECT_EQ(s.classes.size(), 9u);
}

TEST(Contract, EachMistakeIsNamed) {
  struct Case {
    std::function<void(json&)> mutate;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {[](json& j) { j["contract_version"] = 3; }, "newer than this cspine"},
      {[](json& j) { j.erase("contract_version"); }, "'contract_version'"},
      {[](json& j) { j["format"] = "onnx"; }, "'format'"},
      {[](json& j) { j["kind"] = "detector"; }, "'kind'"},
      {[](json& j) { j["input"]["channels"] = 2; }, "'input.channels'"},
      {[](json& j) { j["input"]["slice_offsets"] = json::array(); }, "'input.slice_offsets'"},
      {[](json& j) { j["input"]["size"] = {96}; }, "'input.size'"},
      {[](json& j) {
         j["input"]["size"] = {4, 4};
       },
       "'input.size'"},
      {[](json& j) {
         j["input"]["hu_window"] = {100, 0};
       },
       "'input.hu_window'"},
      {[](json& j) { j["input"]["resize"] = "bicubic"; }, "'input.resize'"},
      {[](json& j) { j["input"]["slices_per_vertebra"] = 0; }, "'input.slices_per_vertebra'"},
      {[](json& j) { j["input"]["crop_margin"] = -1; }, "'input.crop_margin'"},
      {[](json& j) {
         j["output"]["prior"] = {0.1, 0.2};
       },
       "'output.prior'"},
      {[](json& j) { j["output"]["prior"][3] = 1.5; }, "'output.prior'"},
      {[](json& j) { j["output"]["vertebrae"][0] = "T1"; }, "'output.vertebrae'"},
      {[](json& j) { j["output"]["patient_overall"] = "max"; }, "'output.patient_overall'"},
  };
  for (const auto& c : cases) {
    json j = classifier();
    c.mutate(j);
    const std::string msg = error_of(j);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in: " << msg;
    EXPECT_NE(msg.find("m.pt"), std::string::npos) << msg;
  }
  json s = segmentation();
  s["output"]["classes"][2] = "C3";
  EXPECT_NE(error_of(s).find("'output.classes'"), std::string::npos);
  EXPECT_NE(error_of(json::parse("[1, 2]")).find("not a JSON object"), std::string::npos);
  try {
    parse_contract("{not json", "x.pt");
    FAIL() << "no error";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("not valid JSON"), std::string::npos);
    EXPECT_EQ(e.code(), ExitCode::model);
  }
}

// Hostile or careless documents (issue 14): a wrong type, an unchecked field or a number too large for `int` must
// be a ModelError naming the field, never a JSON library exception (exit 1) or a silent wrap-around.
TEST(Contract, WrongTypesAndHugeNumbersAreNamed) {
  struct Case {
    bool segmentation;
    std::function<void(json&)> mutate;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {false, [](json& j) { j["kind"] = 5; }, "'kind'"},
      {false, [](json& j) { j["format"] = 1; }, "'format'"},
      {false, [](json& j) { j["input"]["resize"] = 3; }, "'input.resize'"},
      {false, [](json& j) { j["output"]["patient_overall"] = json::array(); }, "'output.patient_overall'"},
      {false, [](json& j) { j["input"]["layout"] = "NCHW"; }, "'input.layout'"},
      {false, [](json& j) { j["input"]["dtype"] = "float16"; }, "'input.dtype'"},
      {false, [](json& j) { j["output"]["activation"] = "softmax"; }, "'output.activation'"},
      {false, [](json& j) { j["output"]["outputs"] = {"logit"}; }, "'output.outputs'"},
      {false, [](json& j) { j["output"]["outputs"] = 7; }, "'output.outputs'"},
      {false, [](json& j) { j["input"]["slices_per_vertebra"] = 4294967296ull + 24; }, "'input.slices_per_vertebra'"},
      {false, [](json& j) { j["input"]["slices_per_vertebra"] = "24"; }, "'input.slices_per_vertebra'"},
      {false, [](json& j) { j["input"]["min_slices"] = 4294967296ull + 5; }, "'input.min_slices'"},
      {false, [](json& j) { j["input"]["crop_margin"] = "0.1"; }, "'input.crop_margin'"},
      {false, [](json& j) { j["input"]["size"] = {4294967296ull + 64, 64}; }, "'input.size'"},
      {false, [](json& j) { j["input"]["size"] = {18446744073709551615ull, 64}; }, "'input.size'"},
      {false, [](json& j) { j["input"]["slice_offsets"] = {-1, 4294967296ll, 1}; }, "'input.slice_offsets'"},
      {false, [](json& j) { j["input"]["channels"] = 4294967296ull + 3; }, "'input.channels'"},
      {false, [](json& j) { j["input"]["hu_window"] = {"a", 2}; }, "'input.hu_window'"},
      {false, [](json& j) { j["output"]["prior"][0] = "0.1"; }, "'output.prior'"},
      {false, [](json& j) { j["output"]["vertebrae"] = {1, 2, 3, 4, 5, 6, 7}; }, "'output.vertebrae'"},
      {false, [](json& j) { j["contract_version"] = 4294967297ull; }, "newer than this cspine"},
      {false, [](json& j) { j["contract_version"] = -4294967295ll; }, "not valid"},
      {false, [](json& j) { j["contract_version"] = 1.5; }, "'contract_version'"},
      {true, [](json& j) { j["output"]["classes"][8] = 3; }, "'output.classes'"},
      {true, [](json& j) { j["output"]["activation"] = "sigmoid"; }, "'output.activation'"},
      {true, [](json& j) { j["input"]["layout"] = "VNCHW"; }, "'input.layout'"},
      {true, [](json& j) { j["output"] = "classes"; }, "'output'"},
  };
  for (const auto& c : cases) {
    json j = c.segmentation ? segmentation() : classifier();
    c.mutate(j);
    std::string msg;
    try {
      parse_contract(j.dump(), "m.pt");
    } catch (const ModelError& e) {
      msg = e.what();
    }  // any other exception type escapes and fails the test
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in: '" << msg << "' for "
                                                     << j.dump();
  }
  // The checked fields still accept what the exporter writes.
  json ok = classifier();
  ok["input"]["dtype"] = "float32";
  EXPECT_NO_THROW(parse_contract(ok.dump(), "m.pt"));
  json s = segmentation();
  s["input"]["layout"] = "NCHW";
  s["input"]["dtype"] = "float32";
  EXPECT_NO_THROW(parse_contract(s.dump(), "s.pt"));
}
