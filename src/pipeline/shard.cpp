#include "pipeline/shard.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "cspine/dicom.h"
#include "cspine/error.h"
#include "cspine/runtime.h"
#include "output/predict_outputs.h"
#include "pipeline/input_plan.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace cspine {

namespace {

// A whole number >= 0 from `text`, or nothing.
std::optional<long long> whole(const std::string& text) {
  if (text.empty() || text.size() > 12 || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return std::stoll(text);
}

long long env_number(const EnvLookup& env, const char* name, const std::string& why) {
  const char* v = env(name);
  if (!v || !*v) throw UsageError("--shard " + why + ": $" + std::string(name) + " is not set (not inside " +
                                  (why.rfind("k8s", 0) == 0 ? "a Kubernetes Indexed Job" : "a Slurm job array") + "?)");
  const auto n = whole(v);
  if (!n) throw UsageError("--shard " + why + ": $" + std::string(name) + "='" + v + "' is not a whole number");
  return *n;
}

ShardSpec checked(long long k, long long n, const std::string& text) {
  if (n < 1) throw UsageError("--shard " + text + ": the number of shards must be at least 1");
  if (k < 0 || k >= n)
    throw UsageError("--shard " + text + ": shard " + std::to_string(k) + " is not between 0 and " + std::to_string(n - 1));
  return {static_cast<std::size_t>(k), static_cast<std::size_t>(n)};
}

}  // namespace

ShardSpec parse_shard(const std::string& text, const EnvLookup& env) {
  const auto slash = text.find('/');
  const std::string head = text.substr(0, slash);
  const std::string tail = slash == std::string::npos ? "" : text.substr(slash + 1);
  std::optional<long long> n;
  if (slash != std::string::npos) {
    n = whole(tail);
    if (!n) throw UsageError("--shard " + text + ": '" + tail + "' is not a number of shards");
  }
  if (head == "slurm") {
    const long long id = env_number(env, "SLURM_ARRAY_TASK_ID", text);
    if (n) return checked(id, *n, text);  // slurm/N: the array's task ids are the shard numbers (a rerun of some)
    const long long lo = env_number(env, "SLURM_ARRAY_TASK_MIN", text);
    const long long hi = env_number(env, "SLURM_ARRAY_TASK_MAX", text);
    const long long count = env_number(env, "SLURM_ARRAY_TASK_COUNT", text);
    if (hi < lo || hi - lo + 1 != count)
      throw UsageError("--shard slurm: the array " + std::to_string(lo) + "-" + std::to_string(hi) + " has " +
                       std::to_string(count) + " task(s), so its step is not 1 (or it has gaps); submit --array=" +
                       std::to_string(lo) + "-" + std::to_string(lo + count - 1) +
                       ", or give the number of shards with --shard slurm/N to run some shards only");
    return checked(id - lo, count, text);
  }
  if (head == "k8s") {
    if (!n) throw UsageError("--shard k8s: give the number of shards, --shard k8s/N (the Job's completions)");
    return checked(env_number(env, "JOB_COMPLETION_INDEX", text), *n, text);
  }
  const auto k = whole(head);
  if (!k || !n) throw UsageError("--shard " + text + ": expected K/N (shard K of N, from 0), slurm, slurm/N or k8s/N");
  return checked(*k, *n, text);
}

std::map<std::string, std::size_t> shard_of(const std::vector<std::string>& order, std::size_t count) {
  std::set<std::string> sorted(order.begin(), order.end());
  std::map<std::string, std::size_t> out;
  std::size_t i = 0;
  for (const auto& uid : sorted) out[uid] = i++ % count;
  return out;
}

std::string shard_dir(const std::string& run_dir, const ShardSpec& shard) {
  const int width = std::max<int>(4, static_cast<int>(std::to_string(shard.count).size()));
  char name[64];
  std::snprintf(name, sizeof name, "%0*zu-of-%0*zu", width, shard.index, width, shard.count);
  return (fs::path(run_dir) / "shards" / name).string();
}

std::string run_plan_path(const std::string& run_dir) { return (fs::path(run_dir) / "plan.json").string(); }

std::string file_fnv1a64(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot read '" + path + "'");
  uint64_t h = 1469598103934665603ull;
  char c;
  while (in.get(c)) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  char s[17];
  std::snprintf(s, sizeof s, "%016llx", static_cast<unsigned long long>(h));
  return s;
}

void configure_shard(BatchOptions& o, const ShardSpec& shard, const std::string& run_dir, const std::string& plan_path) {
  const std::string dir = shard_dir(run_dir, shard);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) throw OutputError("cannot create the shard folder '" + dir + "'");

  // The run's plan: RUN/plan.json, made once (by `cspine plan`, or by the first task that needs it).
  const std::string run_plan = run_plan_path(run_dir);
  const std::string input = fs::absolute(o.input).lexically_normal().string();
  std::shared_ptr<InputPlan> plan;
  if (!plan_path.empty()) {
    plan = std::make_shared<InputPlan>(read_input_plan(plan_path));
  } else if (fs::exists(run_plan, ec)) {
    plan = std::make_shared<InputPlan>(read_input_plan(run_plan));
  } else {
    log_info("no plan given and none in " + run_dir + ": indexing " + input + " (cspine plan does it once for all tasks)");
    const auto t0 = std::chrono::steady_clock::now();
    const StudyIndex index = scan_studies(input, ScanOptions{o.p.threads});
    plan = std::make_shared<InputPlan>(
        plan_from_index(index, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()));
  }
  if (fs::path(plan->input).lexically_normal() != fs::path(input) &&
      fs::weakly_canonical(plan->input, ec) != fs::weakly_canonical(input, ec))
    throw UsageError("--plan: the plan was made for '" + plan->input + "', not for '" + o.input + "'");
  if (fs::exists(run_plan, ec)) {
    if (run_plan != plan_path) {
      const InputPlan existing = read_input_plan(run_plan);
      if (existing.id != plan->id)
        throw UsageError(run_plan + " holds another plan (id " + existing.id + ", this one " + plan->id +
                         "): the input changed, or the run folder belongs to another run; use a new --run-dir");
    }
  } else {
    write_input_plan(*plan, run_plan);
  }

  // This shard's studies: rank in UID order of the outputs' studies (test.csv's, or every study found), mod N.
  std::vector<std::string> order;
  json test_fp = nullptr;
  if (!o.test_csv.empty()) {
    order = read_test_rows(o.test_csv).studies;
    test_fp = file_fnv1a64(o.test_csv);
  } else {
    for (const auto& s : plan->studies) order.push_back(s.uid);
  }
  auto mine = std::make_shared<std::set<std::string>>();
  for (const auto& [uid, k] : shard_of(order, shard.count))
    if (k == shard.index) mine->insert(uid);
  o.filter = [mine](std::size_t, const std::string& uid) { return mine->count(uid) > 0; };
  o.input_plan = plan;
  o.output = (fs::path(dir) / kShardCsv).string();
  o.report = (fs::path(dir) / kShardReport).string();
  o.resume = true;  // a rerun (requeue after preemption, a node failure) goes on from the shard's journal
  o.journal_extra = {{"shard", {{"index", shard.index}, {"count", shard.count}}},
                     {"plan", plan->id},
                     {"test_csv", test_fp}};

  // A journal of this folder written for another plan or test CSV is not this shard's: refuse to mix them.
  const std::string journal = o.output + kJournalSuffix;
  std::ifstream in(journal);
  std::string first;
  if (in && std::getline(in, first)) {
    const json h = json::parse(first, nullptr, false);
    if (h.is_object() && h.contains("plan") && (h["plan"] != plan->id || h.value("test_csv", json()) != test_fp))
      throw UsageError("'" + journal + "' was written for another plan or --test-csv; use a new --run-dir");
  }
  log_info("shard " + std::to_string(shard.index) + " of " + std::to_string(shard.count) + ": " +
           std::to_string(mine->size()) + " of " + std::to_string(order.size()) + " studies, outputs in " + dir);
}

}  // namespace cspine
