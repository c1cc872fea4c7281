// The predict batch (what `cspine predict` runs): every study of a folder through the Predictor, with the
// outputs, the progress journal and --resume, the loading thread, progress display and exit codes. The CLI only
// fills BatchOptions (src/cli/cmd_predict.cpp); docs/predict.md documents the behaviour.
#pragma once
#include <cstddef>
#include <optional>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cspine/predict.h"

namespace cspine {

struct InputPlan;

struct BatchOptions {
  std::string input, output, test_csv, wide_csv, report, masks;
  std::string dicom_out;  // folder for each study's DICOM SEG, SR and key image (src/output/dicom_results.h)
  std::string seg_model, cls_model;  // empty: the default models (models/seg.pt, models/cls.pt)
  std::string dump_stages;           // --dump-stages DIR: each stage's intermediate results per study
  PredictOptions p;                  // device, fp16, batch size, threads (model paths are filled in)
  bool resume = false;
  std::optional<std::size_t> prefetch;  // studies loaded ahead; empty: auto (2 on CUDA, 1 on the CPU)
  // Optional: scores only the studies it accepts (position in the output order, StudyInstanceUID), for
  // example one shard of a cluster job (src/pipeline/plan.h).
  std::function<bool(std::size_t, const std::string&)> filter;
  // Optional (a shard, src/pipeline/shard.h): the input's studies and their files from a plan
  // (src/pipeline/input_plan.h) instead of a walk of `input`; only the studies the filter keeps are indexed.
  std::shared_ptr<const InputPlan> input_plan;
  // Optional: fields added to the journal's header line (a shard's identity); the header then also holds the
  // classifier's prior and the report's run fields, so that `cspine merge` writes what one run would.
  nlohmann::json journal_extra;
};

// Runs the batch and returns the exit code: 0 all scored, 7 some failed, the first failure's code when all
// failed. Throws cspine::Error for what stops the whole batch (bad options, models, input, outputs) and
// InterruptedError (130) after saving the finished studies.
int predict_batch(const BatchOptions& options);

}  // namespace cspine
