#include <cstdio>

#include "cli/commands.h"
#include "cspine/error.h"
#include "cspine/runtime.h"
#include "cspine/synth.h"
#include "util/interrupt.h"

namespace cspine::cli {

void add_synth(CLI::App& app, Runner& run) {
  struct Options {
    SynthOptions synth;
    std::string slices = "auto", difficulty = "normal";
  };
  auto opt = std::make_shared<Options>();
  SynthOptions& s = opt->synth;
  auto* cmd = app.add_subcommand(
      "synth", "Write synthetic neck CT studies with known vertebrae and fractures in the RSNA 2022 layout");
  cmd->add_option("-o,--out", s.out_dir, "Output folder (train_images/, test_images/, segmentations/, CSVs)")
      ->required();
  cmd->add_option("-n,--studies", s.studies, "Number of studies")->required()->check(CLI::Range(1, 100000));
  cmd->add_option("--seed", s.seed, "Random seed: the same seed gives the same bytes")->capture_default_str();
  cmd->add_option("--test-fraction", s.test_fraction, "Share of studies written to test_images/")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--fracture-rate", s.fracture_rate, "Probability that a study has a fracture")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--matrix", s.matrix, "Rows and columns per slice (64-1024)")
      ->check(CLI::Range(64, 1024))
      ->capture_default_str();
  cmd->add_option("--slices", opt->slices, "Slices per study, or 'auto' (0.5-1 mm spacing, 150-400 slices at 512)")
      ->capture_default_str();
  cmd->add_option("--transfer-syntax", s.transfer_syntax,
                  "mix (explicit and JPEG lossless mostly, some implicit, RLE, JPEG-LS), explicit, implicit, "
                  "big-endian, deflated, jpeg-lossless, jpeg-ls, rle or j2k")
      ->check(CLI::IsMember(synth_transfer_syntaxes()))
      ->capture_default_str();
  cmd->add_option("--difficulty", opt->difficulty,
                  "easy, normal, hard, or a number in [0, 1]: share of subtle fractures")
      ->capture_default_str();
  cmd->add_option("--inject", s.inject,
                  "Deliberate defects in every study, for testing readers: missing-slices, truncated, duplicate, "
                  "localizer, other-series (comma-separated)")
      ->delimiter(',')
      ->check(CLI::IsMember(synth_injections()));
  cmd->add_flag("--preview", s.preview, "Also write previews/<UID>_axial.png and _sagittal.png");
  cmd->add_flag("--overwrite", s.overwrite, "Replace an earlier synth output in the folder (only synth's own files)");
  cmd->add_option("--threads", s.threads, "Threads (0: all cores)")->check(CLI::NonNegativeNumber);
  cmd->callback([opt, &run] {
    run = [opt] {
      SynthOptions o = opt->synth;
      if (opt->slices != "auto") {
        try {
          std::size_t used = 0;
          o.slices = std::stoi(opt->slices, &used);
          if (used != opt->slices.size()) throw std::invalid_argument("trailing characters");
        } catch (const std::exception&) {
          throw UsageError("--slices must be 'auto' or a whole number, not '" + opt->slices + "'");
        }
      }
      const auto d = parse_difficulty(opt->difficulty);
      if (!d)
        throw UsageError("--difficulty must be easy, normal, hard or a number in [0, 1], not '" + opt->difficulty +
                         "'");
      o.difficulty = *d;
      install_interrupt_handlers();  // Ctrl-C: finished studies stay, the one in progress is removed
      const SynthSummary summary = generate_dataset(o);
      char seconds[32];
      std::snprintf(seconds, sizeof seconds, "%.1f", summary.seconds);
      int train = 0, test = 0, positive = 0;
      for (const auto& st : summary.studies) {
        (st.test ? test : train) += 1;
        for (int f : st.fractured)
          if (f) {
            ++positive;
            break;
          }
      }
      log_info("wrote " + std::to_string(summary.studies.size()) + " studies (" + std::to_string(train) + " train, " +
               std::to_string(test) + " test, " + std::to_string(positive) + " with a fracture) to " + o.out_dir +
               " in " + seconds + " s");
      return 0;
    };
  });
}

}  // namespace cspine::cli
