// `cspine merge RUN`: the shards of a run (src/pipeline/shard.h) put together. It reads RUN/plan.json and every
// RUN/shards/*/submission.csv.progress.jsonl, checks that all shards used the same models, plan, shard count and
// test CSV, and writes the outputs through the same writers as one `cspine predict` run over the same input, so
// the CSVs are byte-identical to that run's. Studies failed or not yet scored are listed by shard.
#pragma once
#include <string>
#include <vector>

namespace cspine {

struct MergeOptions {
  std::string run_dir, output, test_csv, wide_csv, report;
};

// Returns 0 when every study of every shard is scored, 7 (partial) when some failed or were not scored yet (the
// log names the shards to rerun; the outputs are written with what there is). Throws cspine::Error when the
// shards cannot be merged (no plan, no journal, shards of different runs, unwritable outputs).
int merge_run(const MergeOptions& options);

}  // namespace cspine
