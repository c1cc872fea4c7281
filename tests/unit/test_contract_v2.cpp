// Contract version 2 (docs/model-contract.md): the parser's vocabulary and its refusals, and the host steps behind
// the new rules: slice order, per-slice min-max, zero edges, OpenCV resizes, the study box and its classes,
// numpy's linspace, the study-box plan. The end-to-end check against the RSNA 2022 notebook itself is
// tests/python/test_rawe_parity.py.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cspine/contract.h"
#include "cspine/error.h"
#include "image/opencv_resize.h"
#include "pipeline/slice_input.h"
#include "pipeline/study_box.h"

using namespace cspine;
using nlohmann::json;

namespace {

json rawe_seg() {
  return json::parse(R"({
    "format": "cspine-model", "contract_version": 2, "kind": "segmentation",
    "input": {"channels": 3, "slice_offsets": [-1, 0, 1], "size": [64, 64], "slice_order": "instance_number",
              "edge": "zeros", "intensity": "slice_minmax", "resize": "opencv_nearest", "layout": "NCHW", "dtype": "float32"},
    "output": {"classes": ["background","C1","C2","C3","C4","C5","C6","C7","T1-T12"], "activation": "sigmoid",
               "threshold": 0.5, "channel_labels": [1,2,3,4,5,6,7,0], "cleanup": "none"},
    "runtime": {"numerics": "exact"}})");
}

json rawe_cls() {
  return json::parse(R"({
    "format": "cspine-model", "contract_version": 2, "kind": "classifier",
    "input": {"channels": 1, "slice_offsets": [0], "size": [64, 64], "slice_order": "instance_number", "edge": "zeros",
              "intensity": "slice_minmax", "resize": "opencv_linear", "layout": "VNCHW", "dtype": "float32",
              "slices_per_vertebra": 24, "min_slices": 5, "locate": "study_box", "box_min_voxels": 10,
              "crop": "study_box", "select": "linspace_floor"},
    "output": {"vertebrae": ["C1","C2","C3","C4","C5","C6","C7"], "activation": "sigmoid", "outputs": ["logit", "attention"],
               "prior": [0.1,0.1,0.1,0.1,0.1,0.1,0.1], "patient_overall": "noisy_or", "ensemble": "mean_sigmoid",
               "members": [{"arch": "a"}, {"arch": "b"}]},
    "runtime": {"numerics": "exact"}})");
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

TEST(ContractV2, TheRsna2022ContractsParseIntoTheirRules) {
  const ModelContract s = parse_contract(rawe_seg().dump(), "seg.pt");
  EXPECT_EQ(s.version, 2);
  EXPECT_EQ(s.slice_order, SliceOrderRule::instance_number);
  EXPECT_EQ(s.edge, EdgeRule::zeros);
  EXPECT_EQ(s.intensity, IntensityRule::slice_minmax);
  EXPECT_EQ(s.resize, ResizeRule::opencv_nearest);
  EXPECT_EQ(s.activation, ActivationRule::sigmoid);
  EXPECT_DOUBLE_EQ(s.threshold, 0.5);
  EXPECT_EQ(s.channel_labels, (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 0}));
  EXPECT_EQ(s.cleanup, CleanupRule::none);
  EXPECT_TRUE(s.exact_numerics);
  EXPECT_FALSE(s.device_preprocessable());
  const ModelContract c = parse_contract(rawe_cls().dump(), "cls.pt");
  EXPECT_EQ(c.locate, LocateRule::study_box);
  EXPECT_EQ(c.crop, CropRule::study_box);
  EXPECT_EQ(c.select, SelectRule::linspace_floor);
  EXPECT_EQ(c.ensemble, EnsembleRule::mean_sigmoid);
  EXPECT_EQ(c.members, 2);
  EXPECT_EQ(c.box_min_voxels, 10);
}

TEST(ContractV2, VersionOneDocumentsKeepVersionOneRules) {
  json j = rawe_seg();
  j["contract_version"] = 1;
  j.erase("runtime");
  j["input"]["hu_window"] = {-500, 1300};
  EXPECT_NE(error_of(j).find("needs contract_version 2"), std::string::npos) << error_of(j);
  json v1 = json::parse(R"({
    "format": "cspine-model", "contract_version": 1, "kind": "segmentation",
    "input": {"channels": 3, "slice_offsets": [-1, 0, 1], "size": [128, 128], "hu_window": [-500, 1300]},
    "output": {"classes": ["background","C1","C2","C3","C4","C5","C6","C7","T1-T3"], "activation": "softmax"}})");
  const ModelContract m = parse_contract(v1.dump(), "v1.pt");
  EXPECT_TRUE(m.device_preprocessable());
  EXPECT_EQ(m.channel_labels.size(), 9u);
  EXPECT_EQ(m.channel_labels[8], 8);
  EXPECT_FALSE(m.exact_numerics);
}

TEST(ContractV2, MistakesAreNamed) {
  struct Case {
    bool seg;
    void (*edit)(json&);
    const char* expect;
  };
  const Case cases[] = {
      {true, [](json& j) { j["output"].erase("threshold"); }, "'output.threshold'"},
      {true, [](json& j) { j["output"]["threshold"] = 1.5; }, "'output.threshold'"},
      {true, [](json& j) { j["output"]["channel_labels"] = {1, 2, 9}; }, "'output.channel_labels'"},
      {true, [](json& j) { j["input"]["resize"] = "lanczos"; }, "'input.resize' must be one of"},
      {true, [](json& j) { j["input"]["edge"] = 3; }, "'input.edge' must be one of"},
      {true, [](json& j) { j["input"]["intensity"] = "hu_window"; }, "'input.hu_window'"},
      {true, [](json& j) { j["runtime"]["numerics"] = "fastest"; }, "'runtime.numerics'"},
      {false, [](json& j) { j["input"]["crop"] = "square"; }, "other combinations are not supported"},
      {false, [](json& j) { j["input"]["box_min_voxels"] = 0; }, "'input.box_min_voxels'"},
      {false, [](json& j) { j["output"]["ensemble"] = "single"; }, "\"single\""},
      {false, [](json& j) { j["output"]["members"] = json::array(); }, "'output.members'"},
  };
  for (const auto& c : cases) {
    json j = c.seg ? rawe_seg() : rawe_cls();
    c.edit(j);
    const std::string e = error_of(j);
    EXPECT_NE(e.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in: " << e;
  }
}

TEST(SliceInput, InstanceNumberOrderIsStableAndPositionOrderIsTheVolumes) {
  const std::vector<int> numbers{5, 3, 3, 1};
  EXPECT_EQ(model_slice_order(numbers, SliceOrderRule::instance_number), (std::vector<int>{3, 1, 2, 0}));
  EXPECT_EQ(model_slice_order(numbers, SliceOrderRule::position), (std::vector<int>{0, 1, 2, 3}));
}

TEST(SliceInput, MinMaxOfStoredValuesAndZeroEdges) {
  Volume v;
  v.size = {2, 2, 2};
  v.hu = {-2000, 0, 1000, 2000, 7, 7, 7, 7};  // a padded slice and a constant one
  ModelContract c;
  c.intensity = IntensityRule::slice_minmax;
  std::vector<double> out(4);
  slice_intensities(v, 0, c, out.data());
  EXPECT_EQ(out, (std::vector<double>{0.0, 0.5, 0.75, 1.0}));
  slice_intensities(v, 1, c, out.data());
  EXPECT_EQ(out, (std::vector<double>{0, 0, 0, 0}));
  c.edge = EdgeRule::zeros;
  EXPECT_EQ(neighbour_planes(0, c, 2), (std::vector<int>{-1, 0, 1}));
  EXPECT_EQ(neighbour_planes(1, c, 2), (std::vector<int>{0, 1, -1}));
  c.edge = EdgeRule::clamp;
  EXPECT_EQ(neighbour_planes(0, c, 2), (std::vector<int>{0, 0, 1}));
}

TEST(OpenCvResize, NearestPicksSourcePixelsAndLinearKeepsConstants) {
  const int rows = 3, cols = 4;
  std::vector<double> in(rows * cols * 2);
  for (int i = 0; i < rows * cols; ++i) {
    in[2 * i] = i;        // channel 0: distinct values
    in[2 * i + 1] = 0.25;  // channel 1: constant
  }
  std::vector<double> out(6 * 8 * 2);
  opencv_resize(in.data(), rows, cols, 2, out.data(), 6, 8, ResizeRule::opencv_nearest);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 8; ++x) EXPECT_EQ(out[(y * 8 + x) * 2], in[((y / 2) * cols + x / 2) * 2]);  // exact 2x
  opencv_resize(in.data(), rows, cols, 2, out.data(), 6, 8, ResizeRule::opencv_linear);
  for (int p = 0; p < 48; ++p) EXPECT_NEAR(out[p * 2 + 1], 0.25, 1e-7);
  EXPECT_THROW(opencv_resize(in.data(), rows, cols, 2, out.data(), 6, 8, ResizeRule::bilinear), Error);
}

TEST(StudyBox, BoxIsThePlanesWithEnoughVoxelsAndClassesAreMajorities) {
  LabelGrid g;
  g.cols = 6;
  g.rows = 5;
  g.slices = 4;
  g.labels.assign(6 * 5 * 4, 0);
  auto at = [&](int k, int r, int c) -> uint8_t& { return g.labels[(static_cast<std::size_t>(k) * 5 + r) * 6 + c]; };
  // Volume slice 1: a 3x2 block of C2 and 2 voxels of C3 (8 labelled); slice 2: 2x2 of C4 and 3 voxels of C5
  // (7); slice 3: one stray C7 voxel; volume slice 0: only label 8, which never counts.
  for (int r = 1; r <= 3; ++r)
    for (int c = 1; c <= 2; ++c) at(1, r, c) = 2;
  at(1, 1, 3) = 3;
  at(1, 2, 3) = 3;
  for (int r = 1; r <= 2; ++r)
    for (int c = 2; c <= 3; ++c) at(2, r, c) = 4;
  at(2, 3, 2) = 5;
  at(2, 3, 3) = 5;
  at(2, 0, 2) = 5;
  at(3, 0, 0) = 7;
  at(0, 4, 5) = 8;
  const std::vector<int> order{3, 2, 1, 0};  // model order reverses the volume
  const StudyBox b = locate_study_box(g, order, /*min_voxels=*/6);
  EXPECT_EQ(b.slice0, 1);  // model slices 1 (volume 2: 7 voxels) and 2 (volume 1: 8 voxels)
  EXPECT_EQ(b.slice1, 3);
  EXPECT_EQ(b.row0, 0);  // no row holds 6 labelled voxels over all slices: every row
  EXPECT_EQ(b.row1, 5);
  EXPECT_EQ(b.col0, 2);  // column 2 holds 7 (3 + 4), column 3 only 5
  EXPECT_EQ(b.col1, 3);
  // Inside the box (column 2): model slice 1 has C4 x2 and C5 x2, a tie that goes to the smaller label; model
  // slice 2 has C2 x3.
  EXPECT_EQ(b.slice_class, (std::vector<int>{4, 2}));
  // No plane reaches the threshold: the whole grid, as the notebook's for/else defaults.
  const StudyBox all = locate_study_box(g, order, 1000);
  EXPECT_EQ(all.slice0, 0);
  EXPECT_EQ(all.slice1, 4);
  EXPECT_EQ(all.row0, 0);
  EXPECT_EQ(all.row1, 5);
  EXPECT_EQ(all.col0, 0);
  EXPECT_EQ(all.col1, 6);
}

TEST(StudyBox, LinspaceFloorIsNumpys) {
  // numpy.linspace(0, n - 1, 24, dtype=int), printed by numpy 1.24.
  EXPECT_EQ(linspace_floor(24, 24), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
                                                      19, 20, 21, 22, 23}));
  EXPECT_EQ(linspace_floor(25, 24), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
                                                      19, 20, 21, 22, 24}));
  EXPECT_EQ(linspace_floor(30, 24), (std::vector<int>{0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18, 20, 21, 22,
                                                      23, 25, 26, 27, 29}));
  EXPECT_EQ(linspace_floor(100, 24), (std::vector<int>{0, 4, 8, 12, 17, 21, 25, 30, 34, 38, 43, 47, 51, 55, 60, 64, 68,
                                                       73, 77, 81, 86, 90, 94, 99}));
  EXPECT_EQ(linspace_floor(150, 24), (std::vector<int>{0, 6, 12, 19, 25, 32, 38, 45, 51, 58, 64, 71, 77, 84, 90, 97,
                                                       103, 110, 116, 123, 129, 136, 142, 149}));
}

TEST(StudyBox, PlanGivesFallbacksAndPicksVolumeSlices) {
  ModelContract c = parse_contract(rawe_cls().dump(), "cls.pt");
  c.slices_per_vertebra = 4;
  c.min_slices = 2;
  StudyBox b;
  b.slice0 = 2;
  b.slice_class = {1, 1, 1, 1, 1, 2, 0, 3, 3};  // model slices 2..10
  std::vector<int> order(11);
  for (int i = 0; i < 11; ++i) order[static_cast<std::size_t>(i)] = 10 - i;  // reversed
  const auto plan = plan_box_vertebrae(b, order, {}, c);
  EXPECT_EQ(plan[0].fallback, Fallback::none);
  // 5 slices of C1 (model 2..6) -> linspace(0, 4, 4) = 0, 1, 2, 4 -> model 2, 3, 4, 6 -> volume 8, 7, 6, 4
  EXPECT_EQ(plan[0].picked, (std::vector<int>{8, 7, 6, 4}));
  EXPECT_EQ(plan[1].fallback, Fallback::too_few_slices);  // 1 slice
  EXPECT_EQ(plan[2].fallback, Fallback::none);             // 2 slices, not padded here (the classifier pads)
  EXPECT_EQ(plan[2].picked, (std::vector<int>{1, 0}));
  EXPECT_EQ(plan[3].fallback, Fallback::not_found);
}
