#include "eval/inputs.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "cspine/error.h"
#include "cspine/evaluate.h"
#include "util/csv.h"

namespace cspine::eval {

namespace {

// A probability: a finite number in [0, 1].
double parse_probability(const Csv& csv, const CsvLine& r, const std::string& text, const std::string& row_name) {
  const char* s = text.c_str();
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s, &end);
  const std::string where = csv.where(r.number) + ": row '" + row_name + "': ";
  if (text.empty() || end == s || *end != '\0') throw InvalidInputError(where + "value '" + text + "' is not a number");
  if (std::isnan(v)) throw InvalidInputError(where + "value is NaN");
  if (!(v >= 0.0 && v <= 1.0)) throw InvalidInputError(where + "value " + text + " is outside [0, 1]");
  return v;
}

}  // namespace

LabelSet read_labels(const std::string& path) {
  const Csv csv = read_csv(path, "labels");
  const std::size_t uid_col = csv.require("StudyInstanceUID", " (labels need StudyInstanceUID,patient_overall,C1..C7)");
  std::array<std::size_t, 8> cols{};
  for (int k = 0; k < kNumLabels; ++k)
    cols[k] = csv.require(kLabelNames[k], " (labels need StudyInstanceUID,patient_overall,C1..C7)");
  LabelSet set;
  std::map<std::string, int> first_line;
  for (const auto& r : csv.rows) {
    const std::string& uid = csv.field(r, uid_col);
    if (uid.empty()) throw InvalidInputError(csv.where(r.number) + ": empty StudyInstanceUID");
    if (auto it = first_line.find(uid); it != first_line.end())
      throw InvalidInputError(csv.where(r.number) + ": study '" + uid + "' is duplicated (first at line " +
                       std::to_string(it->second) + ")");
    first_line[uid] = r.number;
    Row y{};
    for (int k = 0; k < kNumLabels; ++k) {
      const std::string& v = csv.field(r, cols[k]);
      char* end = nullptr;
      const double d = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !(d == 0.0 || d == 1.0))
        throw InvalidInputError(csv.where(r.number) + ": study '" + uid + "': " + kLabelNames[k] + " is '" + v +
                         "', expected 0 or 1");
      y[k] = d;
    }
    set.index[uid] = set.uids.size();
    set.uids.push_back(uid);
    set.y.push_back(y);
  }
  if (set.uids.empty()) throw InvalidInputError(path + ": no labelled study");
  return set;
}

std::vector<Row> read_predictions(const std::string& path, const LabelSet& labels, std::string* format) {
  const Csv csv = read_csv(path, "predictions");
  const std::size_t n = labels.uids.size();
  std::vector<Row> p(n, Row{});
  std::vector<std::array<int, 8>> line_of(n, std::array<int, 8>{});  // 0: not seen yet
  auto store = [&](const CsvLine& r, const std::string& row, const std::string& uid, int k, double v) {
    auto it = labels.index.find(uid);
    if (it == labels.index.end())
      throw InvalidInputError(csv.where(r.number) + ": row '" + row + "': study '" + uid + "' is not in the labels");
    int& seen = line_of[it->second][k];
    if (seen)
      throw InvalidInputError(csv.where(r.number) + ": row '" + row + "' is duplicated (first at line " +
                       std::to_string(seen) + ")");
    seen = r.number;
    p[it->second][k] = v;
  };

  if (csv.column("row_id")) {
    if (format) *format = "kaggle";
    const std::size_t id_col = *csv.column("row_id");
    const std::size_t v_col = csv.require("fractured", " (Kaggle predictions are row_id,fractured)");
    for (const auto& r : csv.rows) {
      const std::string& row = csv.field(r, id_col);
      const auto split = split_row_id(row);
      if (!split)
        throw InvalidInputError(csv.where(r.number) + ": row '" + row +
                         "': row_id must end in _patient_overall or _C1.._C7");
      const double v = parse_probability(csv, r, csv.field(r, v_col), row);
      store(r, row, split->first, split->second, v);
    }
  } else if (csv.column("StudyInstanceUID")) {
    if (format) *format = "wide";
    const std::size_t uid_col = *csv.column("StudyInstanceUID");
    std::array<std::size_t, 8> cols{};
    for (int k = 0; k < kNumLabels; ++k)
      cols[k] = csv.require(kLabelNames[k], " (the competition score needs all of patient_overall, C1..C7)");
    for (const auto& r : csv.rows) {
      const std::string& uid = csv.field(r, uid_col);
      for (int k = 0; k < kNumLabels; ++k) {
        const std::string row = row_id(uid, k);
        store(r, row, uid, k, parse_probability(csv, r, csv.field(r, cols[k]), row));
      }
    }
  } else {
    throw InvalidInputError(path + ": the header has neither row_id,fractured (Kaggle) nor StudyInstanceUID (wide)");
  }

  // Name the first labelled study without (all of) its predictions, and say how many there are.
  std::size_t incomplete = 0, first = n;
  std::string missing;
  for (std::size_t i = 0; i < n; ++i) {
    std::string names;
    for (int k = 0; k < kNumLabels; ++k)
      if (!line_of[i][k]) names += std::string(names.empty() ? "" : ", ") + kLabelNames[k];
    if (names.empty()) continue;
    if (incomplete++ == 0) first = i, missing = names;
  }
  if (incomplete)
    throw InvalidInputError(path + ": labelled study '" + labels.uids[first] + "' has no prediction for " + missing +
                     " (the score needs all 8 labels of every labelled study)" +
                     (incomplete > 1 ? "; " + std::to_string(incomplete - 1) + " more labelled studies lack predictions"
                                     : std::string()));
  return p;
}

std::map<std::string, std::vector<int>> read_box_slices(const std::string& path) {
  const Csv csv = read_csv(path, "bounding boxes");
  const std::size_t uid_col = csv.require("StudyInstanceUID", "");
  const std::size_t s_col = csv.require("slice_number", "");
  std::map<std::string, std::vector<int>> out;
  for (const auto& r : csv.rows) {
    const std::string& uid = csv.field(r, uid_col);
    const std::string& s = csv.field(r, s_col);
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !std::isfinite(v) || v != std::floor(v))
      throw InvalidInputError(csv.where(r.number) + ": study '" + uid + "': slice_number '" + s + "' is not an integer");
    if (std::abs(v) > 1e9)  // checked before the conversion, which is undefined out of int's range
      throw InvalidInputError(csv.where(r.number) + ": study '" + uid + "': slice_number '" + s + "' is out of range");
    out[uid].push_back(static_cast<int>(v));
  }
  return out;
}

std::map<std::string, ReportStudy> read_report(const std::string& path) {
  using nlohmann::json;
  const std::string text = read_text(path, "report");
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    throw InvalidInputError(path + ": not valid JSON: " + e.what());
  }
  if (!doc.is_object() || !doc.contains("studies") || !doc["studies"].is_array())
    throw InvalidInputError(path + ": required field 'studies' (an array) is missing");
  auto opt_int = [](const json& j) -> std::optional<int> {
    // Range-checked before converting (out of int's range the conversion is undefined): a slice number
    // outside it is treated as absent.
    if (j.is_number() && std::isfinite(j.get<double>()) && std::abs(j.get<double>()) <= 1e9)
      return static_cast<int>(std::lround(j.get<double>()));
    return std::nullopt;
  };
  std::map<std::string, ReportStudy> out;
  std::size_t i = 0;
  for (const auto& s : doc["studies"]) {
    const std::string where = path + ": studies[" + std::to_string(i++) + "]";
    if (!s.is_object() || !s.contains("study_uid") || !s["study_uid"].is_string())
      throw InvalidInputError(where + ": required field 'study_uid' (a string) is missing");
    const std::string uid = s["study_uid"].get<std::string>();
    if (out.count(uid)) throw InvalidInputError(where + ": study '" + uid + "' is listed twice");
    if (!s.contains("vertebrae") || !s["vertebrae"].is_object())
      throw InvalidInputError(where + " ('" + uid + "'): required field 'vertebrae' (an object) is missing");
    ReportStudy st;
    for (int v = 0; v < 7; ++v) {
      const std::string name = kLabelNames[v + 1];
      if (!s["vertebrae"].contains(name)) continue;
      const json& j = s["vertebrae"][name];
      if (!j.is_object()) throw InvalidInputError(where + " ('" + uid + "'): vertebrae." + name + " is not an object");
      ReportVertebra rv;
      if (j.contains("probability") && j["probability"].is_number()) rv.probability = j["probability"].get<double>();
      if (j.contains("key_slice") && j["key_slice"].is_object() && j["key_slice"].contains("slice_number"))
        rv.key_slice_number = opt_int(j["key_slice"]["slice_number"]);
      if (j.contains("slice_range") && j["slice_range"].is_array() && j["slice_range"].size() == 2) {
        auto a = opt_int(j["slice_range"][0]), b = opt_int(j["slice_range"][1]);
        if (a && b) rv.slice_range = std::array<int, 2>{std::min(*a, *b), std::max(*a, *b)};
      }
      st[v] = rv;
    }
    out[uid] = st;
  }
  return out;
}

}  // namespace cspine::eval
