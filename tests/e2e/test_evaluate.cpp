// `cspine evaluate` end to end: the real binary on hand-made CSVs. Figures, both prediction layouts, the
// ROC PNG, and every input error with its exit code and the row it names.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <array>
#include <fstream>
#include <random>
#include <sstream>

#include "support/fixtures.h"

using namespace cspine::test;
using nlohmann::json;

namespace {


int evaluate(const std::string& args, std::string* out = nullptr, std::string* err = nullptr) {
  return run_command(q(CSPINE_BINARY) + " evaluate " + args, out, err);
}

void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

const char* kNames[8] = {"patient_overall", "C1", "C2", "C3", "C4", "C5", "C6", "C7"};
using Row = std::array<double, 8>;

std::string uid(int i) { return "1.2.826.0.1.3680043." + std::to_string(20000 + i); }

std::string labels_csv(const std::vector<Row>& y) {
  std::ostringstream o;
  o << "StudyInstanceUID,patient_overall,C1,C2,C3,C4,C5,C6,C7\n";
  for (std::size_t i = 0; i < y.size(); ++i) {
    o << uid(static_cast<int>(i));
    for (double v : y[i]) o << "," << static_cast<int>(v);
    o << "\n";
  }
  return o.str();
}

std::string kaggle_csv(const std::vector<Row>& p, const std::string& eol = "\n") {
  std::ostringstream o;
  o.precision(17);
  o << "row_id,fractured" << eol;
  for (std::size_t i = 0; i < p.size(); ++i)
    for (int k : {1, 2, 3, 4, 5, 6, 7, 0}) o << uid(static_cast<int>(i)) << "_" << kNames[k] << "," << p[i][k] << eol;
  return o.str();
}

// Columns deliberately out of order: read by header name.
std::string wide_csv(const std::vector<Row>& p) {
  std::ostringstream o;
  o.precision(17);
  o << "C7,C6,C5,C4,C3,C2,C1,patient_overall,StudyInstanceUID\n";
  for (std::size_t i = 0; i < p.size(); ++i) {
    for (int k = 7; k >= 0; --k) o << p[i][k] << ",";
    o << uid(static_cast<int>(i)) << "\n";
  }
  return o.str();
}

// 40 studies, about half fractured, noisy predictions.
struct Case {
  std::vector<Row> y, p;
};
Case random_case(unsigned seed, int n = 40) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  Case c;
  for (int i = 0; i < n; ++i) {
    Row y{}, p{};
    for (int k = 1; k < 8; ++k) y[k] = u(rng) < 0.2 ? 1 : 0;
    if (i % 10 == 0) y[1 + i % 7] = 1;  // every level has some fractures
    for (int k = 1; k < 8; ++k) y[0] = std::max(y[0], y[k]);
    for (int k = 0; k < 8; ++k) p[k] = std::min(1.0, std::max(0.0, 0.3 + 0.3 * y[k] + 0.5 * (u(rng) - 0.5)));
    c.y.push_back(y);
    c.p.push_back(p);
  }
  return c;
}

}  // namespace

TEST(Evaluate, PerfectPredictions) {
  TempDir dir;
  const Case c = random_case(1);
  write(dir / "labels.csv", labels_csv(c.y));
  write(dir / "sub.csv", kaggle_csv(c.y));
  std::string out, err;
  ASSERT_EQ(evaluate("--predictions " + q(dir / "sub.csv") + " --labels " + q(dir / "labels.csv") + " --json " +
                         q(dir / "e.json"),
                     &out, &err),
            0)
      << err;
  const json j = read_json(dir / "e.json");
  EXPECT_EQ(j["studies"], 40);
  for (const char* name : kNames) {
    EXPECT_DOUBLE_EQ(j["metrics"][name]["auc"]["value"].get<double>(), 1.0) << name;
    EXPECT_DOUBLE_EQ(j["metrics"][name]["sensitivity"]["value"].get<double>(), 1.0) << name;
    EXPECT_DOUBLE_EQ(j["metrics"][name]["specificity"]["value"].get<double>(), 1.0) << name;
    EXPECT_DOUBLE_EQ(j["metrics"][name]["f1"]["value"].get<double>(), 1.0) << name;
  }
  EXPECT_LT(j["competition_score"]["value"].get<double>(), 1e-14);
  EXPECT_DOUBLE_EQ(j["localization"]["value"].get<double>(), 1.0);
  EXPECT_NE(out.find("patient_overall"), std::string::npos);
  EXPECT_NE(out.find("macro (C1-C7)"), std::string::npos);
  EXPECT_NE(out.find("competition score"), std::string::npos);
  EXPECT_EQ(out.find("nan"), std::string::npos);
}

TEST(Evaluate, InvertedAndConstantPredictions) {
  TempDir dir;
  const Case c = random_case(2);
  std::vector<Row> inverted = c.y, constant = c.y;
  for (auto& r : inverted)
    for (auto& v : r) v = 1 - v;
  for (auto& r : constant) r.fill(0.3);
  write(dir / "labels.csv", labels_csv(c.y));
  write(dir / "inv.csv", kaggle_csv(inverted));
  write(dir / "const.csv", kaggle_csv(constant));
  const std::string common = " --labels " + q(dir / "labels.csv") + " --bootstrap 50";
  ASSERT_EQ(evaluate("--predictions " + q(dir / "inv.csv") + common + " --json " + q(dir / "inv.json")), 0);
  ASSERT_EQ(evaluate("--predictions " + q(dir / "const.csv") + common + " --json " + q(dir / "const.json")), 0);
  const json inv = read_json(dir / "inv.json"), cst = read_json(dir / "const.json");
  for (const char* name : kNames) {
    EXPECT_DOUBLE_EQ(inv["metrics"][name]["auc"]["value"].get<double>(), 0.0) << name;
    EXPECT_DOUBLE_EQ(cst["metrics"][name]["auc"]["value"].get<double>(), 0.5) << name;
    // Constant 0.3 < 0.5: nothing positive; precision undefined -> null, never NaN.
    EXPECT_DOUBLE_EQ(cst["metrics"][name]["sensitivity"]["value"].get<double>(), 0.0) << name;
    EXPECT_TRUE(cst["metrics"][name]["precision"]["value"].is_null()) << name;
  }
  // Every loss is about -ln(1e-15) = 34.539 (1 - (1 - 1e-15) is not exactly 1e-15 in double, as in sklearn).
  EXPECT_NEAR(inv["competition_score"]["value"].get<double>(), 34.539, 1e-3);
  // Constant: all 7 vertebrae tie for the top, so each fractured study scores the share of its vertebrae
  // that are fractured.
  double expected = 0;
  int fractured = 0;
  for (const auto& y : c.y) {
    double k = 0;
    for (int v = 1; v < 8; ++v) k += y[v];
    if (k > 0) expected += k / 7, ++fractured;
  }
  EXPECT_NEAR(cst["localization"]["value"].get<double>(), expected / fractured, 1e-12);
}

TEST(Evaluate, WideAndKaggleGiveIdenticalFigures) {
  TempDir dir;
  const Case c = random_case(3);
  write(dir / "labels.csv", labels_csv(c.y));
  // Kaggle layout with a UTF-8 BOM and CRLF line endings.
  write(dir / "kaggle.csv", "\xEF\xBB\xBF" + kaggle_csv(c.p, "\r\n"));
  write(dir / "wide.csv", wide_csv(c.p));
  const std::string common = " --labels " + q(dir / "labels.csv") + " --bootstrap 200 --seed 9";
  ASSERT_EQ(evaluate("--predictions " + q(dir / "kaggle.csv") + common + " --json " + q(dir / "k.json")), 0);
  ASSERT_EQ(evaluate("--predictions " + q(dir / "wide.csv") + common + " --json " + q(dir / "w.json")), 0);
  json k = read_json(dir / "k.json"), w = read_json(dir / "w.json");
  EXPECT_EQ(k["inputs"]["predictions_format"], "kaggle");
  EXPECT_EQ(w["inputs"]["predictions_format"], "wide");
  k.erase("inputs");
  w.erase("inputs");
  EXPECT_EQ(k, w);
}

TEST(Evaluate, BootstrapIsDeterministicPerSeed) {
  TempDir dir;
  const Case c = random_case(4);
  write(dir / "labels.csv", labels_csv(c.y));
  write(dir / "sub.csv", kaggle_csv(c.p));
  const std::string common = "--predictions " + q(dir / "sub.csv") + " --labels " + q(dir / "labels.csv");
  std::string a, b, d;
  ASSERT_EQ(evaluate(common + " --seed 5 --json -", &a), 0);
  ASSERT_EQ(evaluate(common + " --seed 5 --json -", &b), 0);
  ASSERT_EQ(evaluate(common + " --seed 6 --json -", &d), 0);
  EXPECT_EQ(a, b);
  const json ja = json::parse(a), jd = json::parse(d);
  EXPECT_EQ(ja["metrics"]["C1"]["auc"]["value"], jd["metrics"]["C1"]["auc"]["value"]);
  EXPECT_NE(ja["metrics"]["C1"]["auc"]["ci95"], jd["metrics"]["C1"]["auc"]["ci95"]);
  EXPECT_EQ(ja["bootstrap"]["resamples"], 1000);
  const auto ci = ja["competition_score"]["ci95"];
  EXPECT_LE(ci[0].get<double>(), ja["competition_score"]["value"].get<double>());
  EXPECT_GE(ci[1].get<double>(), ja["competition_score"]["value"].get<double>());
}

TEST(Evaluate, SingleClassLabelIsNotApplicable) {
  TempDir dir;
  Case c = random_case(5);
  for (auto& y : c.y) y[7] = 0;  // no C7 fracture anywhere
  write(dir / "labels.csv", labels_csv(c.y));
  write(dir / "sub.csv", kaggle_csv(c.p));
  std::string out;
  ASSERT_EQ(evaluate("--predictions " + q(dir / "sub.csv") + " --labels " + q(dir / "labels.csv") + " --bootstrap 100 "
                     "--threshold youden --json " + q(dir / "e.json"),
                     &out),
            0);
  const json j = read_json(dir / "e.json");
  EXPECT_TRUE(j["metrics"]["C7"]["auc"]["value"].is_null());
  EXPECT_TRUE(j["metrics"]["C7"]["auc"]["ci95"].is_null());
  EXPECT_TRUE(j["metrics"]["C7"]["sensitivity"]["value"].is_null());
  EXPECT_FALSE(j["metrics"]["macro_vertebrae"]["auc"]["value"].is_null());
  EXPECT_EQ(j["threshold"]["mode"], "youden");
  EXPECT_NE(out.find("n/a"), std::string::npos);
  EXPECT_EQ(out.find("nan"), std::string::npos);
}

TEST(Evaluate, AttentionAlignmentHandCase) {
  TempDir dir;
  // Study 0: C2 and C5 fractured, boxes on slices 40-48 (C2) and 120-125 (C5).
  // Study 1: C1 fractured, no box. Study 2: nothing fractured.
  std::vector<Row> y = {{1, 0, 1, 0, 0, 1, 0, 0}, {1, 1, 0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0, 0, 0}};
  std::vector<Row> p = {{0.9, 0.1, 0.8, 0.1, 0.1, 0.6, 0.1, 0.1}, {0.7, 0.6, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1},
                        {0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1}};
  write(dir / "labels.csv", labels_csv(y));
  write(dir / "sub.csv", kaggle_csv(p));
  std::string boxes = "StudyInstanceUID,x,y,width,height,slice_number\n";
  for (int s : {40, 44, 48, 120, 125}) boxes += uid(0) + ",1,2,3,4," + std::to_string(s) + "\n";
  write(dir / "boxes.csv", boxes);
  // C2's key slice 45: inside the study's [40, 125] and inside its own boxes [40, 48] (range 30-60).
  // C5's key slice 100: inside [40, 125]; its range 95-130 holds boxes 120-125, and 100 is outside those.
  // Study 1's C1 has a key slice but the study has no box; study 0's C7 (not fractured) is ignored.
  const std::string report = R"({"studies":[
    {"study_uid":")" + uid(0) + R"(","vertebrae":{
      "C2":{"probability":0.8,"key_slice":{"index":44,"slice_number":45,"z_mm":-40.5},"slice_range":[30,60]},
      "C5":{"key_slice":{"slice_number":100},"slice_range":[130,95]},
      "C7":{"probability":0.1}}},
    {"study_uid":")" + uid(1) + R"(","vertebrae":{"C1":{"key_slice":{"slice_number":12}}}},
    {"study_uid":"9.9.9","vertebrae":{}}]})";
  write(dir / "report.json", report);
  std::string out, err;
  ASSERT_EQ(evaluate("--predictions " + q(dir / "sub.csv") + " --labels " + q(dir / "labels.csv") + " --report " +
                         q(dir / "report.json") + " --bboxes " + q(dir / "boxes.csv") + " --bootstrap 20 --json " +
                         q(dir / "e.json"),
                     &out, &err),
            0)
      << err;
  const json a = read_json(dir / "e.json")["attention_alignment"];
  EXPECT_EQ(a["study_range"]["considered"], 2);
  EXPECT_EQ(a["study_range"]["aligned"], 2);
  EXPECT_EQ(a["vertebra_range"]["considered"], 2);
  EXPECT_EQ(a["vertebra_range"]["aligned"], 1);
  EXPECT_EQ(a["skipped"]["no_boxes"], 1);
  EXPECT_NE(out.find("attention alignment"), std::string::npos);
  // Localization: study 0's top is C2 (fractured), study 1's top is C1 (fractured).
  EXPECT_DOUBLE_EQ(read_json(dir / "e.json")["localization"]["value"].get<double>(), 1.0);
}

TEST(Evaluate, RocPngHasTheStatedSize) {
  TempDir dir;
  const Case c = random_case(6);
  write(dir / "labels.csv", labels_csv(c.y));
  write(dir / "sub.csv", kaggle_csv(c.p));
  ASSERT_EQ(evaluate("--predictions " + q(dir / "sub.csv") + " --labels " + q(dir / "labels.csv") +
                     " --bootstrap 0 --roc-png " + q(dir / "roc.png")),
            0);
  std::ifstream in(dir / "roc.png", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 33u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(bytes.substr(12, 4), "IHDR");
  auto be32 = [&](std::size_t o) {
    return (static_cast<unsigned char>(bytes[o]) << 24) | (static_cast<unsigned char>(bytes[o + 1]) << 16) |
           (static_cast<unsigned char>(bytes[o + 2]) << 8) | static_cast<unsigned char>(bytes[o + 3]);
  };
  EXPECT_EQ(be32(16), 640u);
  EXPECT_EQ(be32(20), 640u);
  EXPECT_EQ(bytes[24], 8);  // bit depth
  EXPECT_EQ(bytes[25], 2);  // colour type RGB
}

// Each input error: exit code and the row named in the message.
struct ErrorCase {
  const char* name;
  std::string predictions;  // file content ("" = use the good one)
  std::string labels;
  std::string extra_args;
  int code;
  std::vector<std::string> message;
};

TEST(EvaluateErrors, EachNamesTheOffendingRow) {
  const Case c = random_case(7, 3);
  const std::string labels = labels_csv(c.y);
  const std::string good = kaggle_csv(c.p);
  auto replace = [](std::string s, const std::string& from, const std::string& to) {
    const auto at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return s.replace(at, from.size(), to);
  };
  const std::string row1 = uid(1) + "_C3,";
  const auto value_of = [&](const std::string& row) {
    const auto at = good.find(row);
    return good.substr(at, good.find('\n', at) - at);
  };
  const std::string line_c3 = value_of(row1);
  const std::vector<ErrorCase> cases = {
      {"missing study", kaggle_csv({c.p[0], c.p[1]}), labels, "", 8,
       {"labelled study '" + uid(2) + "'", "C1"}},
      {"unknown study", good + "9.9.9_C1,0.5\n", labels, "", 8, {"sub.csv:26", "9.9.9_C1", "not in the labels"}},
      {"outside [0,1]", replace(good, line_c3, row1 + "1.5"), labels, "", 8, {uid(1) + "_C3", "outside [0, 1]"}},
      {"nan", replace(good, line_c3, row1 + "nan"), labels, "", 8, {uid(1) + "_C3", "NaN"}},
      {"not a number", replace(good, line_c3, row1 + "abc"), labels, "", 8, {uid(1) + "_C3", "not a number"}},
      {"duplicated row", good + line_c3 + "\n", labels, "", 8, {"sub.csv:26", uid(1) + "_C3", "duplicated", "line 12"}},
      {"bad row_id", good + uid(1) + "_C9,0.5\n", labels, "", 8, {"sub.csv:26", uid(1) + "_C9"}},
      {"wide without patient_overall", "StudyInstanceUID,C1,C2,C3,C4,C5,C6,C7\n", labels, "", 8, {"patient_overall"}},
      {"unknown header", "a,b\n", labels, "", 8, {"neither row_id"}},
      {"bad label", good, replace(labels, uid(0) + ",", uid(0) + ",2,"), "", 8, {"labels.csv:2", uid(0), "expected 0 or 1"}},
      {"duplicated label", good, labels + labels.substr(labels.find('\n') + 1), "", 8, {"labels.csv:5", "duplicated", "line 2"}},
      {"bad threshold", good, labels, "--threshold 1.5", 2, {"--threshold"}},
      {"report without bboxes", good, labels, "--report x.json", 2, {"--bboxes"}},
      {"png extension", good, labels, "--roc-png out.jpg", 2, {".png"}},
  };
  for (const auto& ec : cases) {
    TempDir dir;
    write(dir / "sub.csv", ec.predictions);
    write(dir / "labels.csv", ec.labels);
    std::string out, err;
    const int code = evaluate("--predictions " + q(dir / "sub.csv") + " --labels " + q(dir / "labels.csv") +
                                  " --bootstrap 10 " + ec.extra_args,
                              &out, &err);
    EXPECT_EQ(code, ec.code) << ec.name << ": " << err;
    for (const auto& m : ec.message) EXPECT_NE(err.find(m), std::string::npos) << ec.name << ": '" << m << "' not in: " << err;
  }
  // Missing input file.
  TempDir dir;
  std::string err;
  EXPECT_EQ(evaluate("--predictions " + q(dir / "none.csv") + " --labels " + q(dir / "none.csv"), nullptr, &err), 3);
  EXPECT_NE(err.find("none.csv"), std::string::npos);
}
