#include "pipeline/merge.h"

#include <array>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "cspine/error.h"
#include "cspine/exit_codes.h"
#include "cspine/runtime.h"
#include "output/predict_outputs.h"
#include "output/writers.h"
#include "pipeline/input_plan.h"
#include "pipeline/journal.h"
#include "pipeline/plan.h"
#include "pipeline/shard.h"
#include "util/atomic_file.h"
#include "util/file_lock.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace cspine {

namespace {

struct Shard {
  std::string journal;
  json header;
  std::map<std::string, json> entries;  // by study: the ok one when there is one, else the last
  std::vector<std::string> failed, not_scored;
};

// What the CSV writers read of an entry (when no report is written, the rest is not kept: a 100,000-study run's
// entries take ~10 GB as JSON values, their probabilities a few hundred MB).
json slim(json e) {
  json out = {{"study_uid", e["study_uid"]}, {"status", e.value("status", "")}};
  if (e.contains("patient_overall")) out["patient_overall"] = e["patient_overall"];
  if (e.contains("error")) out["error"] = {{"message", e["error"].is_object() ? e["error"].value("message", "") : ""}};
  if (e.contains("vertebrae") && e["vertebrae"].is_object()) {
    json v = json::object();
    for (auto& [name, one] : e["vertebrae"].items())
      if (one.is_object() && one.contains("probability")) v[name] = {{"probability", one["probability"]}};
    out["vertebrae"] = std::move(v);
  }
  return out;
}

std::size_t header_size(const json& h, const char* key, const std::string& journal) {
  const json& s = h.at("shard");
  if (!s.is_object() || !s.contains(key) || !s[key].is_number_unsigned())
    throw InvalidInputError(journal + ": header field shard." + key + " is not a whole number");
  return s[key].get<std::size_t>();
}

}  // namespace

int merge_run(const MergeOptions& o) {
  const std::string plan_path = run_plan_path(o.run_dir);
  if (!fs::is_directory(o.run_dir)) throw InputError("the run folder '" + o.run_dir + "' does not exist");
  if (!fs::exists(plan_path))
    throw InputError("no plan at '" + plan_path + "': not a cspine run folder (cspine plan INPUT -o " + plan_path + ")");
  const InputPlan plan = read_input_plan(plan_path);

  check_output_path(o.output);
  const FileLock lock(o.output + ".lock", "the output '" + o.output + "'");
  if (!o.wide_csv.empty()) check_output_path(o.wide_csv);
  if (!o.report.empty()) check_output_path(o.report);

  // Every shard journal of the run.
  std::map<std::size_t, Shard> shards;
  std::optional<std::size_t> count;
  json models, test_fp;
  std::string first_journal;
  std::error_code ec;
  const fs::path shards_dir = fs::path(o.run_dir) / "shards";
  if (fs::is_directory(shards_dir, ec))
    for (const auto& d : fs::directory_iterator(shards_dir, ec)) {
      const fs::path journal = d.path() / (std::string(kShardCsv) + kJournalSuffix);
      if (!fs::is_regular_file(journal, ec)) continue;
      Shard s;
      s.journal = journal.string();
      JournalContents c = read_journal(s.journal);
      s.header = c.header;
      const json& h = s.header;
      if (!h.contains("shard") || !h.contains("plan") || !h.contains("prior") || !h.contains("report"))
        throw InvalidInputError(s.journal + ": not a shard's journal (its header has no shard, plan, prior or report)");
      const std::size_t k = header_size(h, "index", s.journal), n = header_size(h, "count", s.journal);
      if (!count) {
        count = n;
        models = h["models"];
        test_fp = h.value("test_csv", json());
        first_journal = s.journal;
      } else if (n != *count) {
        throw UsageError("shards of different runs in '" + o.run_dir + "': " + first_journal + " is one of " +
                         std::to_string(*count) + " shards, " + s.journal + " one of " + std::to_string(n));
      }
      if (h["plan"] != plan.id)
        throw UsageError(s.journal + " was made with another plan (" + h["plan"].dump() + ") than " + plan_path + " (" +
                         plan.id + ")");
      if (h["models"] != models)
        throw UsageError(s.journal + " was scored with other models than " + first_journal + " (fingerprints " +
                         h["models"].dump() + " and " + models.dump() + ")");
      if (h.value("test_csv", json()) != test_fp)
        throw UsageError(s.journal + " was scored with another --test-csv than " + first_journal);
      if (fs::path(s.journal).parent_path() != fs::path(shard_dir(o.run_dir, {k, n})))
        throw InvalidInputError(s.journal + ": its header says shard " + std::to_string(k) + " of " + std::to_string(n) +
                                ", whose folder is " + shard_dir(o.run_dir, {k, n}));
      for (auto& e : c.entries) {
        if (o.report.empty()) e = slim(std::move(e));
        const std::string uid = e["study_uid"].get<std::string>();
        auto it = s.entries.find(uid);
        if (it == s.entries.end() || e.value("status", "") == "ok" || it->second.value("status", "") != "ok")
          s.entries[uid] = std::move(e);
      }
      shards.emplace(k, std::move(s));
    }
  if (!count) throw InputError("no shard has written a journal under '" + shards_dir.string() + "' yet");

  std::optional<TestRows> test;
  if (!o.test_csv.empty()) {
    test = read_test_rows(o.test_csv);
    if (test_fp.is_null())
      throw UsageError("--test-csv " + o.test_csv + ": the shards were scored without a test CSV; merge without it");
    if (file_fnv1a64(o.test_csv) != test_fp)
      throw UsageError("--test-csv " + o.test_csv + " is not the test CSV the shards were scored with");
  } else if (!test_fp.is_null()) {
    throw UsageError("the shards were scored with --test-csv: give the same file to cspine merge");
  }

  const json& h0 = shards.begin()->second.header;
  std::array<double, 7> prior{};
  if (!h0["prior"].is_array() || h0["prior"].size() != 7)
    throw InvalidInputError(shards.begin()->second.journal + ": header field prior is not 7 probabilities");
  for (std::size_t k = 0; k < 7; ++k) {
    if (!h0["prior"][k].is_number()) throw InvalidInputError(shards.begin()->second.journal + ": prior[" + std::to_string(k) + "] is not a number");
    prior[k] = h0["prior"][k].get<double>();
  }

  // The outputs' studies in order, as one run would list them; each from the journal of the shard it belongs to.
  std::vector<std::string> found;
  for (const auto& s : plan.studies) found.push_back(s.uid);
  const Plan p = make_plan(found, test);
  const auto owner = shard_of(p.order, *count);
  const std::set<std::string> missing(p.missing.begin(), p.missing.end());
  for (auto& [k, s] : shards)
    for (auto it = s.entries.begin(); it != s.entries.end();) {
      const auto ow = owner.find(it->first);
      if (ow == owner.end() || ow->second != k) {
        log_warn(s.journal + ": study " + it->first + " is not one of this shard's studies: ignored");
        it = s.entries.erase(it);
      } else {
        ++it;
      }
    }
  std::vector<json> entries;
  std::map<std::size_t, std::pair<std::vector<std::string>, std::vector<std::string>>> gaps;  // shard -> failed, not scored
  std::size_t n_ok = 0, n_failed = 0, n_unscored = 0;
  for (const auto& uid : p.order) {
    if (missing.count(uid)) {
      entries.push_back(missing_entry(uid));
      continue;
    }
    const std::size_t k = owner.at(uid);
    const auto s = shards.find(k);
    json* e = nullptr;
    if (s != shards.end())
      if (auto it = s->second.entries.find(uid); it != s->second.entries.end()) e = &it->second;
    if (!e) {
      gaps[k].second.push_back(uid);
      ++n_unscored;
      continue;
    }
    entries.push_back(std::move(*e));  // each study once: its entry moves to the outputs' list
    e = &entries.back();
    if (e->value("status", "") == "ok") {
      ++n_ok;
    } else {
      const json err = e->value("error", json::object());
      gaps[k].first.push_back(uid + " (" + (err.is_object() ? err.value("message", std::string("failed")) : "failed") + ")");
      ++n_failed;
    }
  }

  // The same writers as `cspine predict`, so the CSVs are the bytes one run would write.
  json fixed = h0["report"];
  if (!fixed.is_object()) fixed = json::object();
  json incomplete = json::array();
  for (const auto& [k, g] : gaps)
    incomplete.push_back({{"shard", k}, {"folder", shard_dir(o.run_dir, {k, *count})}, {"failed", g.first}, {"not_scored", g.second}});
  fixed["merge"] = {{"run", o.run_dir}, {"plan", plan.id}, {"shards", *count}, {"incomplete", incomplete}};
  std::vector<std::unique_ptr<Writer>> writers;
  writers.push_back(std::make_unique<KaggleCsvWriter>(o.output, test, prior));
  if (!o.wide_csv.empty()) writers.push_back(std::make_unique<WideCsvWriter>(o.wide_csv));
  if (!o.report.empty()) writers.push_back(std::make_unique<ReportWriter>(o.report, fixed));
  const BatchSnapshot snapshot{entries, n_unscored == 0};
  for (auto& w : writers) w->snapshot(snapshot);

  char line[300];
  std::snprintf(line, sizeof line, "merged %zu shard journal(s) of %zu: %zu studies scored, %zu failed, %zu not scored yet, %zu missing from the input",
                shards.size(), *count, n_ok, n_failed, n_unscored, p.missing.size());
  log_info(line);
  log_info("wrote " + o.output + (o.wide_csv.empty() ? "" : ", " + o.wide_csv) + (o.report.empty() ? "" : ", " + o.report));
  if (gaps.empty()) return 0;
  std::string rerun;
  for (const auto& [k, g] : gaps) {
    std::string msg = "shard " + std::to_string(k) + " of " + std::to_string(*count) + " (" + shard_dir(o.run_dir, {k, *count}) + ")";
    if (!shards.count(k)) msg += ": no journal (never ran)";
    if (!g.first.empty()) {
      msg += ": " + std::to_string(g.first.size()) + " failed:";
      for (const auto& f : g.first) msg += " " + f + ";";
    }
    if (!g.second.empty()) {
      msg += " " + std::to_string(g.second.size()) + " not scored:";
      for (const auto& u : g.second) msg += " " + u;
    }
    log_error(msg);
    rerun += (rerun.empty() ? "" : ",") + std::to_string(k);
  }
  log_error("incomplete: rerun shard(s) " + rerun + " (scripts/slurm/submit.sh ... --only " + rerun + "), then merge again");
  std::printf("rerun-shards: %s\n", rerun.c_str());
  return to_int(ExitCode::partial);
}

}  // namespace cspine
