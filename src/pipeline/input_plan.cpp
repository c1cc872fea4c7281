#include "pipeline/input_plan.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cspine/error.h"
#include "cspine/runtime.h"
#include "util/atomic_file.h"
#include "util/text.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace cspine {

namespace {

std::string fnv1a64(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char s[17];
  std::snprintf(s, sizeof s, "%016llx", static_cast<unsigned long long>(h));
  return s;
}

json studies_json(const InputPlan& p) {
  json studies = json::array();
  for (const auto& s : p.studies) studies.push_back({{"uid", s.uid}, {"roots", s.roots}});
  return studies;
}

std::string plan_id(const InputPlan& p) { return fnv1a64(dump_json({{"input", p.input}, {"studies", studies_json(p)}})); }

// `path` relative to `root`, "/"-separated; "" for the root itself.
std::string relative_to(const std::string& path, const std::string& root) {
  const fs::path rel = fs::path(path).lexically_relative(root);
  const std::string r = rel.generic_string();
  return r == "." ? std::string() : r;
}

std::string parent_of(const std::string& rel) {
  const auto slash = rel.rfind('/');
  return slash == std::string::npos ? std::string() : rel.substr(0, slash);
}

}  // namespace

InputPlan plan_from_index(const StudyIndex& index, double index_seconds) {
  InputPlan plan;
  plan.input = index.root;
  plan.files = index.files_seen;
  plan.dicom_files = index.dicom_files;
  plan.index_seconds = index_seconds;
  std::error_code ec;
  const bool single_file = fs::is_regular_file(index.root, ec);
  // Each study's files (relative), and for every folder the studies with files anywhere under it (one, or
  // "more than one": the owner is then cleared).
  std::map<std::string, std::set<std::string>> files_of;
  struct Owner {
    std::string uid;
    bool shared = false;
  };
  std::map<std::string, Owner> owner;
  for (const auto& study : index.studies)
    for (const auto& series : study.series)
      for (const auto& h : series.slices) {
        const std::string rel = single_file ? std::string() : relative_to(h.path, index.root);
        if (!files_of[study.study_uid].insert(rel).second) continue;
        if (single_file) continue;
        for (std::string dir = parent_of(rel);; dir = parent_of(dir)) {
          auto [it, added] = owner.emplace(dir, Owner{study.study_uid});
          if (!added && it->second.uid != study.study_uid) it->second.shared = true;
          if (dir.empty()) break;
        }
      }
  for (const auto& study : index.studies) {
    PlannedStudy ps;
    ps.uid = study.study_uid;
    std::set<std::string> roots;
    for (const auto& rel : files_of[study.study_uid]) {
      if (single_file) {
        roots.insert(rel);
        continue;
      }
      // The highest folder above the file that holds this study only; the file itself when its own folder is
      // shared. Owning is monotone (a folder's studies include its subfolders'), so the climb stops at the first
      // shared folder.
      std::string best = rel;
      for (std::string dir = parent_of(rel);; dir = parent_of(dir)) {
        const Owner& o = owner.at(dir);
        if (o.shared) break;
        best = dir;
        if (dir.empty()) break;
      }
      roots.insert(best);
    }
    ps.roots.assign(roots.begin(), roots.end());
    plan.studies.push_back(std::move(ps));
  }
  std::sort(plan.studies.begin(), plan.studies.end(),
            [](const PlannedStudy& a, const PlannedStudy& b) { return a.uid < b.uid; });
  plan.id = plan_id(plan);
  return plan;
}

void write_input_plan(const InputPlan& plan, const std::string& path) {
  const json j = {{"cspine_plan", 1},
                  {"id", plan_id(plan)},
                  {"input", plan.input},
                  {"files", plan.files},
                  {"dicom_files", plan.dicom_files},
                  {"index_seconds", plan.index_seconds},
                  {"studies", studies_json(plan)}};
  write_text_atomically(path, dump_json(j, 1) + "\n");
}

InputPlan read_input_plan(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError("cannot read the plan '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  const json j = json::parse(text.str(), nullptr, false);
  auto bad = [&](const std::string& what) { return InvalidInputError(path + ": not a cspine plan: " + what); };
  if (j.is_discarded()) throw bad("not JSON");
  if (!j.is_object() || j.value("cspine_plan", 0) != 1) throw bad("no \"cspine_plan\": 1");
  InputPlan p;
  if (!j.contains("input") || !j["input"].is_string()) throw bad("\"input\" is not a string");
  p.input = j["input"].get<std::string>();
  if (!j.contains("studies") || !j["studies"].is_array()) throw bad("\"studies\" is not a list");
  if (j.contains("files") && j["files"].is_number_unsigned()) p.files = j["files"].get<std::size_t>();
  if (j.contains("dicom_files") && j["dicom_files"].is_number_unsigned()) p.dicom_files = j["dicom_files"].get<std::size_t>();
  if (j.contains("index_seconds") && j["index_seconds"].is_number()) p.index_seconds = j["index_seconds"].get<double>();
  std::set<std::string> seen;
  std::size_t k = 0;
  for (const auto& s : j["studies"]) {
    const std::string where = "studies[" + std::to_string(k++) + "]";
    if (!s.is_object() || !s.contains("uid") || !s["uid"].is_string() || s["uid"].get<std::string>().empty())
      throw bad(where + ".uid is not a non-empty string");
    if (!s.contains("roots") || !s["roots"].is_array() || s["roots"].empty()) throw bad(where + ".roots is not a list of paths");
    PlannedStudy ps;
    ps.uid = s["uid"].get<std::string>();
    if (!seen.insert(ps.uid).second) throw bad(where + ": study " + ps.uid + " is listed twice");
    for (const auto& r : s["roots"]) {
      if (!r.is_string()) throw bad(where + ".roots holds a non-string");
      const std::string root = r.get<std::string>();
      const fs::path rp(root);
      if (rp.is_absolute() || std::any_of(rp.begin(), rp.end(), [](const fs::path& part) { return part == ".."; }))
        throw bad(where + ".roots: '" + root + "' is not a path inside the input");
      ps.roots.push_back(root);
    }
    p.studies.push_back(std::move(ps));
  }
  std::sort(p.studies.begin(), p.studies.end(), [](const PlannedStudy& a, const PlannedStudy& b) { return a.uid < b.uid; });
  p.id = plan_id(p);
  if (j.contains("id") && j["id"] != p.id)
    throw bad("its \"id\" does not match its content (edited by hand?); make it again with cspine plan");
  return p;
}

StudyIndex scan_planned(const InputPlan& plan, const std::vector<std::string>& uids, const ScanOptions& options) {
  std::map<std::string, const PlannedStudy*> by_uid;
  for (const auto& s : plan.studies) by_uid[s.uid] = &s;
  std::vector<std::string> files;
  for (const auto& uid : uids) {
    const auto it = by_uid.find(uid);
    if (it == by_uid.end()) continue;
    for (const auto& root : it->second->roots) {
      const std::string path = root.empty() ? plan.input : (fs::path(plan.input) / root).string();
      try {
        const auto listed = list_input_files(path);
        files.insert(files.end(), listed.begin(), listed.end());
      } catch (const Error& e) {
        log_warn("study " + uid + ": " + e.what() + " (the plan lists it; the input changed since?)");
      }
    }
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  if (files.empty()) {
    StudyIndex empty;
    empty.root = plan.input;
    return empty;
  }
  try {
    return scan_files(plan.input, files, options);
  } catch (const NoDicomError& e) {  // every listed file has become unreadable: each study fails on its own
    log_warn(e.what());
    StudyIndex empty;
    empty.root = plan.input;
    return empty;
  }
}

}  // namespace cspine
