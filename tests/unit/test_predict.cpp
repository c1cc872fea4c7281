// The pieces of the predict pipeline that need no model: connected-component cleanup, the nearest label
// resize, noisy-or, the stacked segmentation input, and the CSVs made from report entries.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <random>
#include <tuple>

#include "cspine/error.h"
#include "cspine/predict.h"
#include "output/predict_outputs.h"
#include "support/fixtures.h"

using namespace cspine;
using nlohmann::json;

namespace {

// A label map {cols, rows, slices} with boxes painted in.
struct Map {
  std::array<int, 3> size;
  std::vector<uint8_t> v;
  explicit Map(std::array<int, 3> s) : size(s), v(static_cast<std::size_t>(s[0]) * s[1] * s[2], 0) {}
  uint8_t& at(int i, int j, int k) { return v[(static_cast<std::size_t>(k) * size[1] + j) * size[0] + i]; }
  void box(int i0, int i1, int j0, int j1, int k0, int k1, uint8_t l) {
    for (int k = k0; k <= k1; ++k)
      for (int j = j0; j <= j1; ++j)
        for (int i = i0; i <= i1; ++i) at(i, j, k) = l;
  }
  std::size_t count(uint8_t l) const { return static_cast<std::size_t>(std::count(v.begin(), v.end(), l)); }
};

}  // namespace

TEST(LargestComponent, KeepsTheBiggestIslandOfEachLabel) {
  Map m({12, 10, 8});
  m.box(0, 3, 0, 3, 0, 3, 3);    // C3: 64 voxels
  m.box(8, 9, 8, 9, 6, 7, 3);    // C3 island: 8 voxels
  m.box(6, 6, 0, 0, 0, 0, 5);    // C5: 1 voxel, alone: kept
  m.box(0, 1, 6, 7, 0, 0, 9);    // T2 (label 9) islands are not touched
  m.box(4, 5, 6, 7, 3, 3, 9);
  const std::size_t removed = keep_largest_components(m.v, m.size);
  EXPECT_EQ(removed, 8u);
  EXPECT_EQ(m.count(3), 64u);
  EXPECT_EQ(m.at(8, 8, 6), 0);
  EXPECT_EQ(m.count(5), 1u);
  EXPECT_EQ(m.count(9), 8u);
}

TEST(LargestComponent, DiagonalNeighboursAreSeparateComponents) {
  // Face connectivity (scipy.ndimage.label's default): two voxels touching at an edge are two components.
  Map m({4, 4, 2});
  m.box(0, 1, 0, 0, 0, 0, 2);  // 2 voxels
  m.box(2, 2, 1, 1, 0, 0, 2);  // touches (1,0) only diagonally
  EXPECT_EQ(keep_largest_components(m.v, m.size), 1u);
  EXPECT_EQ(m.at(2, 1, 0), 0);
  EXPECT_EQ(m.count(2), 2u);
}

TEST(LargestComponent, TiesGoToTheFirstInRasterOrder) {
  Map m({6, 2, 3});
  m.box(4, 5, 0, 0, 0, 0, 1);  // first in raster order (slice 0)
  m.box(0, 1, 0, 0, 2, 2, 1);  // same size, slice 2
  keep_largest_components(m.v, m.size);
  EXPECT_EQ(m.at(4, 0, 0), 1);
  EXPECT_EQ(m.at(0, 0, 2), 0);
}

TEST(LargestComponent, AdjacentDifferentLabelsStayApart) {
  Map m({6, 1, 1});
  m.box(0, 2, 0, 0, 0, 0, 4);
  m.box(3, 3, 0, 0, 0, 0, 5);
  m.box(5, 5, 0, 0, 0, 0, 4);  // separated from the first C4 run by C5 and background
  EXPECT_EQ(keep_largest_components(m.v, m.size), 1u);
  EXPECT_EQ(m.count(4), 3u);
  EXPECT_EQ(m.count(5), 1u);
}

namespace {
// Reference for keep_largest_components: breadth-first flood fill with face connectivity over the whole map.
std::size_t reference_keep_largest(std::vector<uint8_t>& v, const std::array<int, 3>& s, int first, int last) {
  const auto idx = [&](int i, int j, int k) { return (static_cast<std::size_t>(k) * s[1] + j) * s[0] + i; };
  std::vector<int> comp(v.size(), -1);
  std::vector<std::size_t> sizes;
  std::vector<uint8_t> label_of;
  for (int k = 0; k < s[2]; ++k)
    for (int j = 0; j < s[1]; ++j)
      for (int i = 0; i < s[0]; ++i) {
        const uint8_t l = v[idx(i, j, k)];
        if (l < first || l > last || comp[idx(i, j, k)] >= 0) continue;
        const int c = static_cast<int>(sizes.size());
        sizes.push_back(0);
        label_of.push_back(l);
        std::vector<std::array<int, 3>> todo{{i, j, k}};
        comp[idx(i, j, k)] = c;
        while (!todo.empty()) {
          const auto p = todo.back();
          todo.pop_back();
          ++sizes[static_cast<std::size_t>(c)];
          for (const auto& d : std::array<std::array<int, 3>, 6>{{{1, 0, 0}, {-1, 0, 0}, {0, 1, 0}, {0, -1, 0}, {0, 0, 1}, {0, 0, -1}}}) {
            const int a = p[0] + d[0], b = p[1] + d[1], e = p[2] + d[2];
            if (a < 0 || b < 0 || e < 0 || a >= s[0] || b >= s[1] || e >= s[2]) continue;
            if (v[idx(a, b, e)] != l || comp[idx(a, b, e)] >= 0) continue;
            comp[idx(a, b, e)] = c;
            todo.push_back({a, b, e});
          }
        }
      }
  std::map<uint8_t, int> keep;  // components are numbered in raster order of their first voxel
  for (std::size_t c = 0; c < sizes.size(); ++c) {
    auto it = keep.find(label_of[c]);
    if (it == keep.end() || sizes[c] > sizes[static_cast<std::size_t>(it->second)]) keep[label_of[c]] = static_cast<int>(c);
  }
  std::size_t removed = 0;
  for (std::size_t x = 0; x < v.size(); ++x)
    if (comp[x] >= 0 && keep[v[x]] != comp[x]) {
      v[x] = 0;
      ++removed;
    }
  return removed;
}
}  // namespace

TEST(LargestComponent, EqualsAFloodFillOnRandomMaps) {
  // Random blobs of labels 1-9 in part of the map (labels 8-9 outside the range must stay untouched, and the
  // labelled box does not start at the origin), many islands and ties.
  std::mt19937 rng(42);
  for (int trial = 0; trial < 20; ++trial) {
    const std::array<int, 3> s{9 + trial % 5, 7 + trial % 4, 6 + trial % 3};
    Map m(s);
    std::uniform_int_distribution<int> label(0, 12), pos(0, 1 << 20);
    for (int b = 0; b < 25; ++b) {
      const int l = label(rng);
      if (l < 1 || l > 9) continue;
      const int i = 1 + pos(rng) % (s[0] - 2), j = 1 + pos(rng) % (s[1] - 2), k = pos(rng) % s[2];
      const int i1 = std::min(s[0] - 1, i + pos(rng) % 3), j1 = std::min(s[1] - 1, j + pos(rng) % 2);
      const int k1 = std::min(s[2] - 1, k + pos(rng) % 2);
      m.box(i, i1, j, j1, k, k1, static_cast<uint8_t>(l));
    }
    std::vector<uint8_t> expected = m.v;
    const std::size_t expected_removed = reference_keep_largest(expected, s, 1, 7);
    const std::size_t removed = keep_largest_components(m.v, s);
    EXPECT_EQ(removed, expected_removed) << "trial " << trial;
    EXPECT_EQ(m.v, expected) << "trial " << trial;
  }
}

TEST(LabelResize, FollowsPyTorchNearest) {
  // 3 -> 5 columns: scale = 0.6f, sources floor(d * 0.6) = 0, 0, 1, 1, 2; rows 2 -> 4 is the exact 2x path.
  const std::vector<uint8_t> in = {1, 2, 3, 4, 5, 6};  // 2 rows x 3 cols
  const auto out = resize_labels_nearest(in, 3, 2, 1, 5, 4);
  const std::vector<uint8_t> want = {1, 1, 2, 2, 3, 1, 1, 2, 2, 3, 4, 4, 5, 5, 6, 4, 4, 5, 5, 6};
  EXPECT_EQ(out, want);
  // Downsampling 4 -> 2 picks columns 0 and 2; identity keeps everything.
  const std::vector<uint8_t> row = {7, 8, 9, 10};
  EXPECT_EQ(resize_labels_nearest(row, 4, 1, 1, 2, 1), (std::vector<uint8_t>{7, 9}));
  EXPECT_EQ(resize_labels_nearest(row, 4, 1, 1, 4, 1), row);
  EXPECT_THROW(resize_labels_nearest(row, 3, 1, 1, 2, 1), Error);
}

TEST(LabelResize, ExtentsWithoutTheResizedMapAreExact) {
  std::mt19937 rng(5);
  // Up- and downsampling, exact 2x, identity and odd ratios; sparse random labels with blobs.
  const std::vector<std::array<int, 4>> shapes = {{8, 6, 16, 12}, {8, 6, 8, 6}, {10, 7, 23, 31}, {12, 9, 5, 4}, {7, 7, 3, 13}};
  for (const auto& [c, r, oc, orr] : shapes) {
    const int slices = 5;
    std::vector<uint8_t> labels(static_cast<std::size_t>(c) * r * slices, 0);
    for (auto& x : labels) x = rng() % 4 == 0 ? static_cast<uint8_t>(rng() % 9) : 0;
    const auto want = vertebra_extents(resize_labels_nearest(labels, c, r, slices, oc, orr), {oc, orr, slices});
    const auto got = vertebra_extents_resized(labels, c, r, slices, oc, orr);
    for (int v = 0; v < 7; ++v) {
      const auto& a = want[static_cast<std::size_t>(v)];
      const auto& b = got[static_cast<std::size_t>(v)];
      ASSERT_EQ(a.has_value(), b.has_value()) << c << "x" << r << " -> " << oc << "x" << orr << " label " << v + 1;
      if (!a) continue;
      EXPECT_EQ(std::make_tuple(a->z0, a->z1, a->y0, a->y1, a->x0, a->x1, a->slices, a->voxels, a->label),
                std::make_tuple(b->z0, b->z1, b->y0, b->y1, b->x0, b->x1, b->slices, b->voxels, b->label))
          << c << "x" << r << " -> " << oc << "x" << orr << " label " << v + 1;
    }
  }
}

TEST(Predict, NoisyOr) {
  EXPECT_DOUBLE_EQ(noisy_or({0, 0, 0, 0, 0, 0, 0}), 0.0);
  EXPECT_NEAR(noisy_or({0.5, 0.5, 0, 0, 0, 0, 0}), 0.75, 1e-15);
  EXPECT_DOUBLE_EQ(noisy_or({0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0}), 1.0);
}

TEST(Predict, StackedTripletsEqualPerSliceInput) {
  test::SeriesSpec spec;
  spec.rows = 20;
  spec.columns = 24;
  spec.slices = 5;
  Volume v;
  v.size = {spec.columns, spec.rows, spec.slices};
  for (int k = 0; k < spec.slices; ++k) {
    const auto s = test::phantom_slice(spec.rows, spec.columns, k);
    v.hu.insert(v.hu.end(), s.begin(), s.end());
  }
  ModelContract c;
  c.height = 16;
  c.width = 12;
  c.slice_offsets = {-2, 0, 1};
  const auto resized = window_resize_volume(v, c, 2);
  const std::size_t per = 3u * 16 * 12;
  std::vector<float> stacked(per * 5), single(per);
  stack_triplets(resized, 5, c, {0, 1, 2, 3, 4}, stacked.data());
  for (int k = 0; k < 5; ++k) {
    segmentation_input(v, k, c, single.data());
    for (std::size_t i = 0; i < per; ++i) ASSERT_EQ(stacked[static_cast<std::size_t>(k) * per + i], single[i]) << k << " " << i;
  }
}

namespace {
json ok_entry(const std::string& uid, double base) {
  json v = json::object();
  std::array<double, 7> p{};
  for (int k = 0; k < 7; ++k) {
    p[static_cast<std::size_t>(k)] = base + 0.01 * k;
    v["C" + std::to_string(k + 1)] = {{"probability", p[static_cast<std::size_t>(k)]}};
  }
  return {{"study_uid", uid}, {"status", "ok"}, {"patient_overall", noisy_or(p)}, {"vertebrae", v}};
}
}  // namespace

TEST(PredictOutputs, KaggleRowsPerStudyWithoutTestCsv) {
  const std::array<double, 7> prior{0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1};
  const std::vector<json> entries = {ok_entry("1.2.3", 0.2), failed_entry("1.2.4", ExitCode::unusable_series, "x", 0.1),
                                     ok_entry("1.2.5", 0.5)};
  const std::string csv = kaggle_csv(entries, nullptr, prior);
  EXPECT_EQ(csv.substr(0, 17), "row_id,fractured\n");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 17);  // header + 2 studies x 8
  EXPECT_NE(csv.find("1.2.3_C1,0.200000\n1.2.3_C2,0.210000\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find("1.2.5_C7,0.560000\n1.2.5_patient_overall,"), std::string::npos) << csv;
  EXPECT_EQ(csv.find("1.2.4"), std::string::npos) << "a failed study has no rows without --test-csv";
  const std::string wide = wide_csv(entries);
  EXPECT_EQ(wide.substr(0, wide.find('\n')), "StudyInstanceUID,patient_overall,C1,C2,C3,C4,C5,C6,C7");
  EXPECT_NE(wide.find("\n1.2.5," + format_probability(entries[2]["patient_overall"]) + ",0.500000,0.510000,"),
            std::string::npos)
      << wide;
}

TEST(PredictOutputs, TestCsvRowsInItsOrderWithPriorForMissingAndFailed) {
  test::TempDir dir;
  const std::string path = dir / "test.csv";
  std::ofstream(path) << "row_id,StudyInstanceUID,prediction_type\n"
                         "B_C2,B,C2\nA_patient_overall,A,patient_overall\nC_C1,C,C1\nB_patient_overall,B,x\nD_C7,D,C7\n";
  const TestRows t = read_test_rows(path);
  EXPECT_EQ(t.studies, (std::vector<std::string>{"B", "A", "C", "D"}));
  const std::array<double, 7> prior{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7};
  // A scored, B missing from the input, C failed, D not finished yet (interrupted): D's rows are left out.
  const std::vector<json> entries = {ok_entry("A", 0.3), missing_entry("B"),
                                     failed_entry("C", ExitCode::unusable_series, "no position", 0.0)};
  const std::string csv = kaggle_csv(entries, &t.row_ids, prior);
  const std::string want = "row_id,fractured\nB_C2,0.200000\nA_patient_overall," +
                           format_probability(entries[0]["patient_overall"]) + "\nC_C1,0.100000\nB_patient_overall," +
                           format_probability(noisy_or(prior)) + "\n";
  EXPECT_EQ(csv, want);
}

TEST(PredictOutputs, BadTestCsvNamesTheLine) {
  test::TempDir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"row_id\nA_C1\nA_C8\n", "test.csv:3"},
      {"row_id\nA_C1\nA_C1\n", "repeated (first at line 2)"},
      {"StudyInstanceUID\nA\n", "no column 'row_id'"},
      {"row_id\n", "no rows"},
  };
  for (const auto& [text, expect] : cases) {
    const std::string path = dir / "test.csv";
    std::ofstream(path) << text;
    try {
      read_test_rows(path);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const InvalidInputError& e) {
      EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(read_test_rows(dir / "absent.csv"), InputError);
}
