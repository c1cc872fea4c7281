// The predict batch (what `cspine predict` runs): every study of a folder through the Predictor, with the
// outputs, the progress journal and --resume, the loading thread, progress display and exit codes. The CLI only
// fills BatchOptions (src/cli/cmd_predict.cpp); README "Predicting" documents the behaviour.
#pragma once
#include <cstddef>
#include <optional>
#include <string>

#include "cspine/predict.h"

namespace cspine {

struct BatchOptions {
  std::string input, output, test_csv, wide_csv, report, masks;
  std::string seg_model, cls_model;  // empty: the default models (models/seg.pt, models/cls.pt)
  PredictOptions p;                  // device, fp16, batch size, threads (model paths are filled in)
  bool resume = false;
  std::optional<std::size_t> prefetch;  // studies loaded ahead; empty: auto (2 on CUDA, 1 on the CPU)
};

// Runs the batch and returns the exit code: 0 all scored, 7 some failed, the first failure's code when all
// failed. Throws cspine::Error for what stops the whole batch (bad options, models, input, outputs) and
// InterruptedError (130) after saving the finished studies.
int predict_batch(const BatchOptions& options);

}  // namespace cspine
