// `cspine plan` and `cspine merge`: the two ends of a batch sharded over a cluster (docs/cluster.md); the shards
// themselves are `cspine predict --run-dir RUN --shard K/N` (src/cli/cmd_predict.cpp).
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cspine/dicom.h"
#include "cspine/runtime.h"
#include "pipeline/input_plan.h"
#include "pipeline/merge.h"
#include "util/atomic_file.h"

namespace cspine::cli {

void add_plan(CLI::App& app, Runner& run) {
  struct Options {
    std::string input, output;
    int threads = 0;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "plan", "Index a folder of studies once for a sharded run: which studies, and where each one's files are (JSON)");
  cmd->add_option("input", opt->input, "Folder of studies (any DICOM tree)")->required();
  cmd->add_option("-o,--output", opt->output, "Plan to write, e.g. RUN/plan.json (the tasks of the run read it)")->required();
  cmd->add_option("--threads", opt->threads, "Threads reading headers (0: all cores)")->check(CLI::NonNegativeNumber);
  cmd->callback([opt, &run] {
    run = [opt] {
      // The run folder may not exist yet: `cspine plan INPUT -o RUN/plan.json` starts a run.
      const auto folder = std::filesystem::path(opt->output).parent_path();
      std::error_code ec;
      if (!folder.empty()) std::filesystem::create_directories(folder, ec);
      check_output_path(opt->output);
      const std::string input = std::filesystem::absolute(opt->input).lexically_normal().string();
      const auto t0 = std::chrono::steady_clock::now();
      const StudyIndex index = scan_studies(input, ScanOptions{opt->threads});
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const InputPlan plan = plan_from_index(index, seconds);
      write_input_plan(plan, opt->output);
      char line[300];
      std::snprintf(line, sizeof line, "plan %s: %zu studies, %zu files (%zu DICOM) indexed in %.2f s (%.2f s per 1000 studies)",
                    plan.id.c_str(), plan.studies.size(), plan.files, plan.dicom_files, seconds,
                    plan.studies.empty() ? 0.0 : seconds * 1000.0 / static_cast<double>(plan.studies.size()));
      log_info(line);
      log_info("wrote " + opt->output);
      return 0;
    };
  });
}

void add_merge(CLI::App& app, Runner& run) {
  auto opt = std::make_shared<MergeOptions>();
  auto* cmd = app.add_subcommand(
      "merge", "Put the shards of a run together: the outputs one predict run would write; exit 7 naming the shards to rerun");
  cmd->add_option("run", opt->run_dir, "Run folder (--run-dir of the shards: plan.json and shards/)")->required();
  cmd->add_option("-o,--output", opt->output, "Kaggle submission CSV to write (row_id,fractured)")->required();
  cmd->add_option("--test-csv", opt->test_csv, "The Kaggle test.csv the shards were scored with (required when they were)");
  cmd->add_option("--wide-csv", opt->wide_csv, "Also write one row per study: StudyInstanceUID,patient_overall,C1..C7");
  cmd->add_option("--report", opt->report, "Also write the JSON report of every study, with what is missing per shard");
  cmd->callback([opt, &run] { run = [opt] { return merge_run(*opt); }; });
}

}  // namespace cspine::cli
