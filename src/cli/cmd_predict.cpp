// `cspine predict`: parses the options into a BatchOptions and runs the batch (src/pipeline/batch.cpp).
#include "cli/commands.h"
#include "cspine/error.h"
#include "pipeline/batch.h"

namespace cspine::cli {

void add_predict(CLI::App& app, Runner& run) {
  struct Options : BatchOptions {
    std::string prefetch_text = "auto";
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("predict", "Score a folder of CT studies: Kaggle submission CSV, per-vertebra report");
  cmd->add_option("input", opt->input, "Folder of studies (one folder per study, as test_images/), or one study")
      ->required();
  cmd->add_option("-o,--output", opt->output, "Kaggle submission CSV to write (row_id,fractured)")->required();
  cmd->add_option("--test-csv", opt->test_csv,
                  "Kaggle test.csv: write exactly its rows, in its order (studies absent from INPUT get the prior)");
  cmd->add_option("--seg-model", opt->seg_model, "Segmentation model (TorchScript with cspine.json; default models/seg.pt)");
  cmd->add_option("--cls-model", opt->cls_model, "Classifier model (TorchScript with cspine.json; default models/cls.pt)");
  cmd->add_option("--device", opt->p.device, "auto (CUDA when there is one), cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_flag("--fp16", opt->p.fp16, "Half precision on CUDA");
  cmd->add_option("--batch-size", opt->p.batch_size, "Slices per segmentation batch")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
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
  cmd->add_flag("--resume", opt->resume,
                "Skip the studies a previous run of the same command already scored (read from <output>.progress.jsonl)");
  cmd->callback([opt, &run] {
    run = [opt] {
      Options& o = *opt;
      if (o.prefetch_text != "auto") {
        try {
          std::size_t used = 0;
          const int n = std::stoi(o.prefetch_text, &used);
          if (used != o.prefetch_text.size() || n < 0) throw std::invalid_argument(o.prefetch_text);
          o.prefetch = static_cast<std::size_t>(n);
        } catch (const std::logic_error&) {
          throw UsageError("--prefetch: '" + o.prefetch_text + "' is not a number of studies or auto");
        }
      }
      return predict_batch(o);
    };
  });
}

}  // namespace cspine::cli
