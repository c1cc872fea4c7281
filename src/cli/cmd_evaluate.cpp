#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "cspine/error.h"
#include "cspine/evaluate.h"
#include "cspine/runtime.h"
#include "util/atomic_file.h"

namespace cspine::cli {

void add_evaluate(CLI::App& app, Runner& run) {
  struct Options {
    EvaluateConfig config;
    std::string threshold = "0.5";
    std::string json, roc_png;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("evaluate", "Score predictions against labels: the RSNA 2022 competition score, AUC, "
                                             "sensitivity, specificity, F1 and localization, with bootstrap 95% CIs");
  cmd->add_option("--predictions", opt->config.predictions,
                  "Predictions CSV: Kaggle row_id,fractured or wide StudyInstanceUID,patient_overall,C1..C7")
      ->required();
  cmd->add_option("--labels", opt->config.labels, "Labels CSV: StudyInstanceUID,patient_overall,C1..C7 (0/1)")->required();
  cmd->add_option("--report", opt->config.report, "Predict report JSON (key slices), with --bboxes: attention alignment");
  cmd->add_option("--bboxes", opt->config.bboxes, "train_bounding_boxes.csv, with --report: attention alignment");
  cmd->add_option("--threshold", opt->threshold, "A probability in [0, 1], or 'youden' (per label, from its ROC)")
      ->capture_default_str();
  cmd->add_option("--bootstrap", opt->config.bootstrap, "Bootstrap resamples of studies for the 95% CIs (0: none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--seed", opt->config.seed, "Seed of the bootstrap resampling")->capture_default_str();
  cmd->add_option("--json", opt->json, "Write every figure as JSON to this file ('-': stdout, instead of the table)");
  cmd->add_option("--roc-png", opt->roc_png, "Write the ROC curves as a PNG image");
  cmd->callback([opt, &run] {
    run = [opt] {
      EvaluateConfig cfg = opt->config;
      if (opt->threshold == "youden") {
        cfg.youden = true;
      } else {
        std::size_t used = 0;
        double t = -1;
        try {
          t = std::stod(opt->threshold, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used != opt->threshold.size() || !(t >= 0.0 && t <= 1.0))
          throw UsageError("--threshold '" + opt->threshold + "': expected a probability in [0, 1] or 'youden'");
        cfg.threshold = t;
      }
      // Check the outputs before any work.
      if (!opt->json.empty() && opt->json != "-") check_output_path(opt->json);
      if (!opt->roc_png.empty()) {
        const auto& p = opt->roc_png;
        if (p.size() < 4 || p.compare(p.size() - 4, 4, ".png") != 0)
          throw UsageError("--roc-png '" + p + "' must end in .png");
        check_output_path(p);
      }
      const EvaluationResult result = evaluate(cfg);
      if (opt->json == "-") {
        std::cout << evaluation_json(result);
      } else {
        std::cout << evaluation_table(result);
        if (!opt->json.empty()) {
          write_text_atomically(opt->json, evaluation_json(result));
          log_info("wrote " + opt->json);
        }
      }
      std::cout.flush();
      if (!opt->roc_png.empty()) {
        write_roc_png(result, opt->roc_png);
        log_info("wrote " + opt->roc_png);
      }
      return 0;
    };
  });
}

}  // namespace cspine::cli
