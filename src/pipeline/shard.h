// One batch sharded over the tasks of a cluster job (docs/cluster.md): `cspine predict INPUT --run-dir RUN
// --shard K/N` scores the K-th of N deterministic shards (the studies in StudyInstanceUID order, study i in
// shard i mod N) into RUN/shards/KKKK-of-NNNN/, resuming from that shard's journal when rerun; `cspine merge RUN`
// (src/pipeline/merge.h) puts the shards together.
#pragma once
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/batch.h"

namespace cspine {

struct ShardSpec {
  std::size_t index = 0, count = 1;
};

using EnvLookup = std::function<const char*(const char*)>;

// "K/N" (0 <= K < N), "slurm" (SLURM_ARRAY_TASK_ID minus SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT tasks;
// an array whose step is not 1 is refused), or "k8s/N" (a Kubernetes Indexed Job's JOB_COMPLETION_INDEX).
// UsageError naming --shard and the variable otherwise.
ShardSpec parse_shard(const std::string& text, const EnvLookup& env);

// The shard of every study of `order` (the outputs' studies): its rank in StudyInstanceUID order, mod `count`.
std::map<std::string, std::size_t> shard_of(const std::vector<std::string>& order, std::size_t count);

// RUN/shards/KKKK-of-NNNN (zero-padded to the width of N, at least 4 digits).
std::string shard_dir(const std::string& run_dir, const ShardSpec& shard);
// The file names inside a shard folder, and RUN/plan.json.
inline constexpr const char* kShardCsv = "submission.csv";
inline constexpr const char* kShardReport = "report.json";
inline constexpr const char* kJournalSuffix = ".progress.jsonl";
std::string run_plan_path(const std::string& run_dir);

// Turns a predict batch into shard `shard` of the run in `run_dir`: creates the shard folder, makes sure
// RUN/plan.json holds the run's plan (copied from `plan_path`, or made by walking the input when that is empty;
// refused when RUN/plan.json already holds another plan), and sets the outputs, the filter, resume, the plan
// and the journal header's shard fields. A shard's journal written for another plan or shard count is refused.
void configure_shard(BatchOptions& o, const ShardSpec& shard, const std::string& run_dir, const std::string& plan_path);

// FNV-1a of a file's bytes (the test CSV that the shards and the merge must share).
std::string file_fnv1a64(const std::string& path);

}  // namespace cspine
