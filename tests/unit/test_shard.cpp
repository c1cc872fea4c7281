// Sharding a batch over a cluster (issue 18): the --shard spec from the command line and the scheduler's
// environment, the deterministic assignment, the input plan's roots, and cspine merge over hand-made journals.
// The end-to-end runs (real predict shards, a real Slurm) are in tests/python/test_cluster.py.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cspine/error.h"
#include "cspine/vertebrae.h"
#include "output/predict_outputs.h"
#include "pipeline/input_plan.h"
#include "pipeline/merge.h"
#include "pipeline/shard.h"
#include "support/fixtures.h"

using namespace cspine;
using namespace cspine::test;
using nlohmann::json;

namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
  auto shared = std::make_shared<std::map<std::string, std::string>>(std::move(vars));
  return [shared](const char* name) -> const char* {
    const auto it = shared->find(name);
    return it == shared->end() ? nullptr : it->second.c_str();
  };
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

json ok_entry(const std::string& uid, double base) {
  json v = json::object();
  for (std::size_t k = 0; k < kVertebrae; ++k) v[kVertebraNames[k]] = {{"probability", base + 0.01 * static_cast<double>(k)}};
  return {{"study_uid", uid}, {"status", "ok"}, {"patient_overall", base + 0.1}, {"vertebrae", v}};
}

const std::array<double, 7> kPrior{0.1, 0.2, 0.1, 0.1, 0.1, 0.2, 0.3};

// A run folder with a plan of `uids` and, for each shard given, a journal holding `entries`.
struct FakeRun {
  TempDir dir;
  InputPlan plan;
  std::size_t count;
  FakeRun(const std::vector<std::string>& uids, std::size_t n) : count(n) {
    plan.input = "/data/in";
    for (const auto& u : uids) plan.studies.push_back({u, {u}});
    write_input_plan(plan, run_plan_path(dir.str()));
    plan = read_input_plan(run_plan_path(dir.str()));
  }
  std::string journal(std::size_t k, const std::vector<json>& entries, json models = {{"segmentation", "a"}, {"classifier", "b"}},
                      std::string plan_id = "") {
    const std::string d = shard_dir(dir.str(), {k, count});
    fs::create_directories(d);
    const std::string path = d + "/" + kShardCsv + kJournalSuffix;
    json h = {{"cspine_progress", 1}, {"models", models}, {"shard", {{"index", k}, {"count", count}}},
              {"plan", plan_id.empty() ? plan.id : plan_id}, {"test_csv", nullptr}, {"prior", kPrior},
              {"report", {{"device", "cpu"}}}};
    std::ofstream out(path);
    out << h.dump() << "\n";
    for (const auto& e : entries) out << e.dump() << "\n";
    return path;
  }
};

}  // namespace

TEST(Shard, ParsesKOfN) {
  const auto s = parse_shard("2/4", env_of({}));
  EXPECT_EQ(s.index, 2u);
  EXPECT_EQ(s.count, 4u);
  for (const char* bad : {"4/4", "1", "a/b", "-1/4", "0/0", "1/", "/3", "slurm/x", "k8s"})
    EXPECT_THROW(parse_shard(bad, env_of({{"JOB_COMPLETION_INDEX", "0"}, {"SLURM_ARRAY_TASK_ID", "0"}})), UsageError) << bad;
}

TEST(Shard, TakesSlurmArraysFromZeroOrOne) {
  const auto a = parse_shard("slurm", env_of({{"SLURM_ARRAY_TASK_ID", "7"}, {"SLURM_ARRAY_TASK_MIN", "0"},
                                              {"SLURM_ARRAY_TASK_MAX", "99"}, {"SLURM_ARRAY_TASK_COUNT", "100"}}));
  EXPECT_EQ(a.index, 7u);
  EXPECT_EQ(a.count, 100u);
  const auto b = parse_shard("slurm", env_of({{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_MIN", "1"},
                                              {"SLURM_ARRAY_TASK_MAX", "100"}, {"SLURM_ARRAY_TASK_COUNT", "100"}}));
  EXPECT_EQ(b.index, 0u);
  EXPECT_EQ(b.count, 100u);
  // --array=0-10:5 is tasks 0, 5, 10: a step other than 1 would leave shards out.
  try {
    parse_shard("slurm", env_of({{"SLURM_ARRAY_TASK_ID", "5"}, {"SLURM_ARRAY_TASK_MIN", "0"},
                                 {"SLURM_ARRAY_TASK_MAX", "10"}, {"SLURM_ARRAY_TASK_COUNT", "3"}}));
    FAIL() << "a step of 5 was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("step"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_shard("slurm", env_of({})), UsageError);
  EXPECT_THROW(parse_shard("slurm", env_of({{"SLURM_ARRAY_TASK_ID", "x"}})), UsageError);
  // slurm/N: a rerun of some shards, the array's task ids being the shard numbers (--array=2,5).
  const auto c = parse_shard("slurm/8", env_of({{"SLURM_ARRAY_TASK_ID", "5"}, {"SLURM_ARRAY_TASK_MIN", "2"},
                                                {"SLURM_ARRAY_TASK_MAX", "5"}, {"SLURM_ARRAY_TASK_COUNT", "2"}}));
  EXPECT_EQ(c.index, 5u);
  EXPECT_EQ(c.count, 8u);
  EXPECT_THROW(parse_shard("slurm/4", env_of({{"SLURM_ARRAY_TASK_ID", "4"}})), UsageError);
}

TEST(Shard, TakesKubernetesIndexedJobs) {
  const auto s = parse_shard("k8s/3", env_of({{"JOB_COMPLETION_INDEX", "2"}}));
  EXPECT_EQ(s.index, 2u);
  EXPECT_EQ(s.count, 3u);
  EXPECT_THROW(parse_shard("k8s/3", env_of({{"JOB_COMPLETION_INDEX", "3"}})), UsageError);
  EXPECT_THROW(parse_shard("k8s/3", env_of({})), UsageError);
}

TEST(Shard, EveryStudyInExactlyOneShardByUidRank) {
  const std::vector<std::string> order = {"1.9", "1.10", "1.2", "1.3", "1.4", "2.1", "1.1"};
  const auto of = shard_of(order, 3);
  ASSERT_EQ(of.size(), order.size());
  // sorted: 1.1 1.10 1.2 1.3 1.4 1.9 2.1 -> shards 0 1 2 0 1 2 0
  EXPECT_EQ(of.at("1.1"), 0u);
  EXPECT_EQ(of.at("1.10"), 1u);
  EXPECT_EQ(of.at("1.2"), 2u);
  EXPECT_EQ(of.at("1.3"), 0u);
  EXPECT_EQ(of.at("2.1"), 0u);
  auto reversed = order;
  std::reverse(reversed.begin(), reversed.end());
  EXPECT_EQ(shard_of(reversed, 3), of);  // the input's order does not matter
  EXPECT_EQ(shard_dir("/r", {3, 12}), "/r/shards/0003-of-0012");
  EXPECT_EQ(shard_dir("/r", {3, 12345}), "/r/shards/00003-of-12345");
}

TEST(InputPlan, RootsAreTheStudysOwnFoldersOrItsFiles) {
  StudyIndex index;
  index.root = "/in";
  auto study = [&](const std::string& uid, const std::vector<std::string>& files) {
    StudyInfo s;
    s.study_uid = uid;
    SeriesInfo series;
    for (const auto& f : files) {
      SliceHeader h;
      h.path = "/in/" + f;
      series.slices.push_back(h);
    }
    s.series.push_back(series);
    index.studies.push_back(s);
  };
  study("1.2", {"B/x/1.dcm", "B/y/2.dcm"});
  study("1.1", {"A/1.dcm", "A/2.dcm"});
  study("1.3", {"mixed/c1.dcm", "mixed/c2.dcm"});
  study("1.4", {"mixed/d1.dcm", "mixed/sub/d2.dcm"});
  const InputPlan p = plan_from_index(index, 1.5);
  ASSERT_EQ(p.studies.size(), 4u);
  EXPECT_EQ(p.studies[0].uid, "1.1");
  EXPECT_EQ(p.studies[0].roots, std::vector<std::string>{"A"});
  EXPECT_EQ(p.studies[1].roots, std::vector<std::string>{"B"});
  EXPECT_EQ(p.studies[2].roots, (std::vector<std::string>{"mixed/c1.dcm", "mixed/c2.dcm"}));
  EXPECT_EQ(p.studies[3].roots, (std::vector<std::string>{"mixed/d1.dcm", "mixed/sub"}));

  TempDir dir;
  write_input_plan(p, dir / "plan.json");
  const InputPlan back = read_input_plan(dir / "plan.json");
  EXPECT_EQ(back.id, p.id);
  EXPECT_EQ(back.studies[3].roots, p.studies[3].roots);
  EXPECT_DOUBLE_EQ(back.index_seconds, 1.5);

  // A plan edited by hand (its id no longer matches) or pointing outside its input is refused, naming the file.
  json j = json::parse(slurp(dir / "plan.json"));
  j["studies"][0]["roots"] = {"../etc"};
  std::ofstream(dir / "bad.json") << j.dump();
  EXPECT_THROW(read_input_plan(dir / "bad.json"), InvalidInputError);
  j = json::parse(slurp(dir / "plan.json"));
  j["studies"][0]["roots"] = {"Z"};
  std::ofstream(dir / "edited.json") << j.dump();
  try {
    read_input_plan(dir / "edited.json");
    FAIL() << "an edited plan was accepted";
  } catch (const InvalidInputError& e) {
    EXPECT_NE(std::string(e.what()).find("edited.json"), std::string::npos);
  }
}

TEST(Merge, WritesWhatOneRunWouldAndNamesTheShardsToRerun) {
  const std::vector<std::string> uids = {"1.1", "1.2", "1.3", "1.4", "1.5"};
  FakeRun run(uids, 2);  // shard 0: 1.1 1.3 1.5; shard 1: 1.2 1.4
  std::vector<json> all;
  for (std::size_t i = 0; i < uids.size(); ++i) all.push_back(ok_entry(uids[i], 0.05 * static_cast<double>(i + 1)));
  const std::string expected = kaggle_csv(all, nullptr, kPrior);
  const std::string expected_wide = wide_csv(all);

  // Shard 0 complete (1.3 failed first, then scored on a rerun); shard 1 has only 1.2 so far.
  run.journal(0, {all[0], failed_entry("1.3", ExitCode::unusable_series, "broken", 0.1), all[2], all[4]});
  run.journal(1, {all[1]});
  MergeOptions o{run.dir.str(), run.dir / "sub.csv", "", run.dir / "wide.csv", run.dir / "report.json"};
  testing::internal::CaptureStdout();
  EXPECT_EQ(merge_run(o), 7);
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "rerun-shards: 1\n");
  const json report = json::parse(slurp(o.report));
  EXPECT_FALSE(report["complete"].get<bool>());
  ASSERT_EQ(report["merge"]["incomplete"].size(), 1u);
  EXPECT_EQ(report["merge"]["incomplete"][0]["shard"], 1);
  EXPECT_EQ(report["merge"]["incomplete"][0]["not_scored"], json({"1.4"}));

  // The rerun of shard 1 finishes it; a stray duplicate line (two tasks with the same K) adds no row.
  run.journal(1, {all[1], all[3], all[3]});
  EXPECT_EQ(merge_run(o), 0);
  EXPECT_EQ(slurp(o.output), expected);
  EXPECT_EQ(slurp(o.wide_csv), expected_wide);
  EXPECT_TRUE(json::parse(slurp(o.report))["complete"].get<bool>());
}

TEST(Merge, NamesFailedStudiesAndShardsThatNeverRan) {
  FakeRun run({"1.1", "1.2", "1.3"}, 3);
  run.journal(0, {failed_entry("1.1", ExitCode::unusable_series, "no CT series", 0.1)});
  run.journal(1, {ok_entry("1.2", 0.2)});
  MergeOptions o{run.dir.str(), run.dir / "sub.csv", "", "", ""};
  testing::internal::CaptureStdout();
  EXPECT_EQ(merge_run(o), 7);
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "rerun-shards: 0,2\n");
  EXPECT_EQ(slurp(o.output), kaggle_csv({ok_entry("1.2", 0.2)}, nullptr, kPrior));
}

TEST(Merge, RefusesShardsOfDifferentModelsPlansOrCounts) {
  FakeRun run({"1.1", "1.2"}, 2);
  MergeOptions o{run.dir.str(), run.dir / "sub.csv", "", "", ""};
  EXPECT_THROW(merge_run(o), InputError);  // no journal yet
  run.journal(0, {ok_entry("1.1", 0.1)});
  run.journal(1, {ok_entry("1.2", 0.1)}, {{"segmentation", "other"}, {"classifier", "b"}});
  EXPECT_THROW(merge_run(o), UsageError);
  run.journal(1, {ok_entry("1.2", 0.1)}, {{"segmentation", "a"}, {"classifier", "b"}}, "0123456789abcdef");
  EXPECT_THROW(merge_run(o), UsageError);
  run.journal(1, {ok_entry("1.2", 0.1)});
  EXPECT_EQ(merge_run(o), 0);
  FakeRun other({"1.1", "1.2"}, 3);  // a journal of a 3-shard run copied into the 2-shard run
  fs::create_directories(shard_dir(run.dir.str(), {2, 3}));
  fs::copy_file(other.journal(2, {}), shard_dir(run.dir.str(), {2, 3}) + "/" + kShardCsv + kJournalSuffix);
  EXPECT_THROW(merge_run(o), UsageError);
}
