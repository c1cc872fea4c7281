// `cspine predict`: parses the options into a BatchOptions and runs the batch (src/pipeline/batch.cpp).
#include "cli/commands.h"
#include "cspine/error.h"
#include "pipeline/batch.h"
#include "pipeline/shard.h"

namespace cspine::cli {

namespace {
// A whole number >= `min` given for `flag` (the caller handles "auto"); UsageError otherwise.
int count_or_auto(const std::string& text, const std::string& flag, int min, const std::string& what) {
  try {
    std::size_t used = 0;
    const int n = std::stoi(text, &used);
    if (used != text.size() || n < min) throw std::invalid_argument(text);
    return n;
  } catch (const std::logic_error&) {
    throw UsageError(flag + ": '" + text + "' is not " + what + " (at least " + std::to_string(min) + ") or auto");
  }
}
}  // namespace

void add_predict(CLI::App& app, Runner& run) {
  struct Options : BatchOptions {
    std::string prefetch_text = "auto", batch_text = "auto";
    std::string run_dir, shard, plan;  // a shard of a cluster run (docs/cluster.md)
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("predict", "Score a folder of CT studies: Kaggle submission CSV, per-vertebra report");
  cmd->add_option("input", opt->input, "Folder of studies (one folder per study, as test_images/), or one study")
      ->required();
  cmd->add_option("-o,--output", opt->output, "Kaggle submission CSV to write (row_id,fractured); not with --run-dir");
  cmd->add_option("--test-csv", opt->test_csv,
                  "Kaggle test.csv: write exactly its rows, in its order (studies absent from INPUT get the prior)");
  cmd->add_option("--seg-model", opt->seg_model, "Segmentation model (TorchScript with cspine.json; default models/seg.pt)");
  cmd->add_option("--cls-model", opt->cls_model, "Classifier model (TorchScript with cspine.json; default models/cls.pt)");
  cmd->add_option("--device", opt->p.device, "auto (CUDA when there is one), cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_flag("--fp16", opt->p.fp16, "Half precision on CUDA");
  cmd->add_option("--batch-size", opt->batch_text,
                  "Slices per segmentation batch: N, or auto (32 on the CPU, 128 on CUDA)")
      ->capture_default_str();
  cmd->add_option("--threads", opt->p.threads, "Threads for decoding, preprocessing and LibTorch (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--prefetch", opt->prefetch_text,
                  "Studies loaded ahead, in a thread of their own, while the models run: N, or auto (2 on CUDA with every "
                  "core decoding; 1 on the CPU, decoded by one lowest-priority thread in the models' idle time; 0: "
                  "load in turn)")
      ->capture_default_str();
  cmd->add_option("--preprocess", opt->p.preprocess,
                  "Where the models' inputs are built: auto (device on CUDA, host on the CPU), host, or device (the volume "
                  "sent over once; windowing, resizing, stacking and crops there)")
      ->capture_default_str();
  cmd->add_option("--wide-csv", opt->wide_csv, "Also write one row per study: StudyInstanceUID,patient_overall,C1..C7");
  cmd->add_option("--report", opt->report, "Also write a JSON report: per study and vertebra, ranges, key slice, timings");
  cmd->add_option("--save-masks", opt->masks, "Folder for each study's vertebra label map (<UID>.nii.gz, CT grid)");
  cmd->add_option("--dump-stages", opt->dump_stages,
                  "Folder for each study's intermediate results (slice order, labels, study box, picked slices, "
                  "classifier input, member logits): DIR/<UID>/, to compare a port stage by stage (large)");
  cmd->add_option("--dicom-out", opt->dicom_out,
                  "Folder for each study's DICOM results for a PACS: <UID>/seg.dcm (SEG), sr.dcm (SR), key.dcm (key image)");
  cmd->add_flag("--resume", opt->resume,
                "Skip the studies a previous run of the same command already scored (read from <output>.progress.jsonl)");
  cmd->add_option("--run-dir", opt->run_dir, "Score one shard of a cluster run into this folder (with --shard; cspine merge "
                  "writes the outputs; docs/cluster.md)");
  cmd->add_option("--shard", opt->shard, "With --run-dir: K/N (shard K of N, from 0), slurm (from the job array), slurm/N "
                  "(array task ids are shard numbers) or k8s/N (JOB_COMPLETION_INDEX)");
  cmd->add_option("--plan", opt->plan, "With --run-dir: the plan of INPUT made by cspine plan (default RUN/plan.json, made "
                  "when absent)");
  cmd->callback([opt, &run] {
    run = [opt] {
      Options& o = *opt;
      if (o.run_dir.empty() != o.shard.empty()) throw UsageError("--run-dir and --shard go together");
      if (o.run_dir.empty() && !o.plan.empty()) throw UsageError("--plan needs --run-dir and --shard");
      if (!o.run_dir.empty()) {
        if (!o.output.empty() || !o.wide_csv.empty() || !o.report.empty())
          throw UsageError("--run-dir: a shard writes its outputs under " + o.run_dir +
                           "; -o, --wide-csv and --report belong to cspine merge");
        configure_shard(o, parse_shard(o.shard, [](const char* name) { return std::getenv(name); }), o.run_dir, o.plan);
      } else if (o.output.empty()) {
        throw UsageError("--output is required (or --run-dir and --shard)");
      }
      if (o.prefetch_text != "auto")
        o.prefetch = static_cast<std::size_t>(count_or_auto(o.prefetch_text, "--prefetch", 0, "a number of studies"));
      if (o.batch_text != "auto") o.p.batch_size = count_or_auto(o.batch_text, "--batch-size", 1, "a number of slices");
      try {
        return predict_batch(o);
      } catch (const DeviceError& e) {  // the library names the device; the user typed these options
        throw UsageError("--device " + o.p.device + (o.p.fp16 ? " --fp16" : "") + ": " + e.what());
      }
    };
  });
}

}  // namespace cspine::cli
