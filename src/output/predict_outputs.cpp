#include "output/predict_outputs.h"

#include <cstdio>
#include <map>
#include <set>

#include "cspine/exit_codes.h"
#include "cspine/vertebrae.h"
#include "util/csv.h"

namespace cspine {

namespace {


nlohmann::json vertebra_json(const StudyResult& r, const VertebraResult& v) {
  nlohmann::json j;
  j["probability"] = v.probability;
  j["predicted"] = v.fallback == Fallback::none;
  j["fallback"] = v.fallback == Fallback::none ? nlohmann::json(nullptr) : nlohmann::json(fallback_name(v.fallback));
  if (!v.extent) {
    j["slices_found"] = 0;
    return j;
  }
  const VertebraExtent& e = *v.extent;
  auto number = [&](int k) { return r.slice_numbers.at(static_cast<std::size_t>(k)); };
  auto z = [&](int k) { return r.slice_z.at(static_cast<std::size_t>(k)); };
  j["slices_found"] = e.slices;
  j["voxels"] = e.voxels;
  j["index_range"] = {e.z0, e.z1};
  j["slice_range"] = {number(e.z0), number(e.z1)};
  j["z_range_mm"] = {z(e.z0), z(e.z1)};
  j["box"] = {{"x0", e.x0}, {"y0", e.y0}, {"x1", e.x1}, {"y1", e.y1}};
  if (v.fallback != Fallback::none) return j;
  if (r.study_box) {  // contract crop "study_box": one box for the study, on the segmentation grid
    const StudyBox& b = *r.study_box;
    j["crop"] = {{"study_box", {{"rows", {b.row0, b.row1}}, {"columns", {b.col0, b.col1}}, {"grid", {b.grid_rows, b.grid_cols}}}}};
  } else {
    j["crop"] = {{"x", v.crop.x}, {"y", v.crop.y}, {"side", v.crop.side}};
  }
  j["slices_used"] = v.picked.size();
  j["picked"] = v.picked;
  if (v.key >= 0) {
    const int k = v.picked.at(static_cast<std::size_t>(v.key));
    j["key_slice"] = {{"index", k},
                      {"slice_number", number(k)},
                      {"z_mm", z(k)},
                      {"attention", v.attention.at(static_cast<std::size_t>(v.key))}};
    j["attention"] = v.attention;
  } else {
    j["key_slice"] = nullptr;
  }
  return j;
}

}  // namespace

nlohmann::json study_entry(const StudyResult& r) {
  nlohmann::json j;
  j["study_uid"] = r.study_uid;
  j["status"] = "ok";
  j["series_uid"] = r.series_uid;
  j["size"] = r.size;
  j["spacing_mm"] = r.spacing;
  j["patient_overall"] = r.patient_overall;
  nlohmann::json vertebrae = nlohmann::json::object(), fallbacks = nlohmann::json::array();
  for (std::size_t k = 0; k < kVertebrae; ++k) {
    const VertebraResult& v = r.vertebrae[k];
    vertebrae[kVertebraNames[k]] = vertebra_json(r, v);
    if (v.fallback != Fallback::none)
      fallbacks.push_back({{"vertebra", kVertebraNames[k]},
                           {"reason", fallback_name(v.fallback)},
                           {"slices_found", v.extent ? v.extent->slices : 0},
                           {"probability", v.probability}});
  }
  j["vertebrae"] = vertebrae;
  j["fallbacks"] = fallbacks;
  j["cleanup_voxels_removed"] = r.cleanup_voxels;
  nlohmann::json warnings = nlohmann::json::array();
  for (const auto& w : r.warnings) warnings.push_back({{"code", w.code}, {"message", w.message}});
  j["warnings"] = warnings;
  j["seconds"] = {{"load", r.seconds.load},
                  {"wait", r.seconds.wait},
                  {"segment", r.seconds.segment},
                  {"cleanup", r.seconds.cleanup},
                  {"classify", r.seconds.classify},
                  {"masks", r.seconds.masks},
                  {"total", r.seconds.total()},
                  {"segment_model", r.seconds.segment_model},
                  {"classify_model", r.seconds.classify_model}};
  return j;
}

nlohmann::json failed_entry(const std::string& uid, ExitCode code, const std::string& message, double seconds) {
  std::string name = "internal";
  for (const auto& info : kExitCodes)
    if (info.code == code) name = std::string(info.name);
  return {{"study_uid", uid},
          {"status", "failed"},
          {"error", {{"exit_code", to_int(code)}, {"name", name}, {"message", message}}},
          {"seconds", {{"total", seconds}}}};
}

nlohmann::json missing_entry(const std::string& uid) {
  return {{"study_uid", uid},
          {"status", "missing"},
          {"error", {{"message", "named by --test-csv but not found in the input; rows filled with the prior"}}}};
}

std::array<double, 8> entry_probabilities(const nlohmann::json& entry, const std::array<double, 7>& prior) {
  std::array<double, 8> out{};
  if (entry.value("status", "") == "ok") {
    out[0] = entry.at("patient_overall").get<double>();
    for (std::size_t k = 0; k < kVertebrae; ++k)
      out[k + 1] = entry.at("vertebrae").at(kVertebraNames[k]).at("probability").get<double>();
    return out;
  }
  out[0] = noisy_or(prior);
  for (std::size_t k = 0; k < kVertebrae; ++k) out[k + 1] = prior[k];
  return out;
}

std::string format_probability(double p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", p);
  return buf;
}

std::string kaggle_csv(const std::vector<nlohmann::json>& entries, const std::vector<std::string>* test_rows,
                       const std::array<double, 7>& prior) {
  std::string out = "row_id,fractured\n";
  if (!test_rows) {
    for (const auto& e : entries) {
      if (e.value("status", "") != "ok") continue;
      const auto p = entry_probabilities(e, prior);
      const std::string uid = e.at("study_uid").get<std::string>();
      for (int k = 1; k <= kNumLabels; ++k) {  // C1..C7, then patient_overall
        const int label = k % kNumLabels;
        out += row_id(uid, label) + "," + format_probability(p[static_cast<std::size_t>(label)]) + "\n";
      }
    }
    return out;
  }
  std::map<std::string, std::array<double, 8>> by_uid;
  for (const auto& e : entries) by_uid[e.at("study_uid").get<std::string>()] = entry_probabilities(e, prior);
  for (const auto& row : *test_rows) {
    const auto split = split_row_id(row);
    auto it = split ? by_uid.find(split->first) : by_uid.end();
    if (it == by_uid.end()) continue;
    out += row + "," + format_probability(it->second[static_cast<std::size_t>(split->second)]) + "\n";
  }
  return out;
}

std::string wide_csv(const std::vector<nlohmann::json>& entries) {
  std::string out = "StudyInstanceUID,patient_overall,C1,C2,C3,C4,C5,C6,C7\n";
  for (const auto& e : entries) {
    if (e.value("status", "") != "ok") continue;
    const auto p = entry_probabilities(e, {});
    out += e.at("study_uid").get<std::string>();
    for (double x : p) out += "," + format_probability(x);
    out += "\n";
  }
  return out;
}

TestRows read_test_rows(const std::string& path) {
  const Csv csv = read_csv(path, "--test-csv");
  const std::size_t id = csv.require("row_id", " (a Kaggle test.csv has row_id,StudyInstanceUID,prediction_type)");
  TestRows t;
  std::map<std::string, int> seen;
  std::set<std::string> studies;
  for (const auto& r : csv.rows) {
    const std::string& row = csv.field(r, id);
    const auto split = split_row_id(row);
    if (!split)
      throw InvalidInputError(csv.where(r.number) + ": row_id '" + row +
                              "' is not <StudyInstanceUID>_C1..C7 or <StudyInstanceUID>_patient_overall");
    if (auto it = seen.find(row); it != seen.end())
      throw InvalidInputError(csv.where(r.number) + ": row_id '" + row + "' is repeated (first at line " +
                              std::to_string(it->second) + ")");
    seen[row] = r.number;
    t.row_ids.push_back(row);
    if (studies.insert(split->first).second) t.studies.push_back(split->first);
  }
  if (t.row_ids.empty()) throw InvalidInputError(path + ": no rows");
  return t;
}

}  // namespace cspine
