// `cspine evaluate`: scores a set of predictions against labels, with the RSNA 2022 competition metric and
// the clinical metrics papers report (AUC, sensitivity, specificity, F1, localization), each with a 95%
// bootstrap confidence interval over studies.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cspine/vertebrae.h"  // kLabelNames: patient_overall, C1..C7

namespace cspine {


struct EvaluateConfig {
  std::string predictions;       // Kaggle `row_id,fractured` or wide `StudyInstanceUID,patient_overall,C1..C7`
  std::string labels;            // wide labels CSV (train.csv layout)
  std::string report;            // optional: predict report JSON (key slices), for attention alignment
  std::string bboxes;            // optional: train_bounding_boxes.csv, for attention alignment
  bool youden = false;           // per-label threshold maximising sensitivity + specificity - 1
  double threshold = 0.5;        // used when !youden; a prediction is positive when p >= threshold
  int bootstrap = 1000;          // resamples of studies for the confidence intervals (0: none)
  std::uint64_t seed = 42;       // seeds the resampling (std::mt19937_64)
};

// A figure with its 95% percentile-bootstrap interval; `value` is empty when undefined (for example AUC when
// a label has a single class), `resamples` says how many resamples produced a defined value.
struct Estimate {
  std::optional<double> value;
  std::optional<double> lo, hi;
  int resamples = 0;
};

struct LabelMetrics {
  std::string name;                     // patient_overall, C1..C7, or macro_vertebrae
  int n = 0;                            // studies
  int positives = 0;                    // studies with the label (macro: fractured vertebrae, all levels)
  std::optional<double> threshold;      // empty for the macro row (each vertebra uses its own)
  long tp = 0, fp = 0, tn = 0, fn = 0;  // at the threshold (macro: summed over vertebrae)
  Estimate auc, sensitivity, specificity, precision, f1, accuracy;
};

struct LevelLocalization {
  std::string level;                // C1..C7
  double picked = 0;                // fractured studies whose top vertebra is this level (ties split)
  std::optional<double> pick_correct;  // share of those where this level is fractured
  int fractured = 0;                // studies with this level fractured
  std::optional<double> found;      // share of those whose top vertebra is this level (ties split)
};

struct AttentionAlignment {
  int considered = 0;                   // fractured vertebrae with a key slice and boxes in their study
  int aligned = 0;                      // key slice within [min, max] box slice_number of the study
  std::optional<double> share;
  int considered_vertebra = 0;          // same, with boxes restricted to the vertebra's slice_range
  int aligned_vertebra = 0;
  std::optional<double> share_vertebra;
  int no_key_slice = 0;                 // fractured vertebrae whose report entry has no key_slice.slice_number
  int no_boxes = 0;                     // fractured vertebrae of studies without any box
  int not_in_report = 0;                // fractured vertebrae missing from the report
};

struct EvaluationResult {
  EvaluateConfig config;
  std::string predictions_format;       // "kaggle" or "wide"
  int studies = 0;
  std::vector<LabelMetrics> labels;     // patient_overall, C1..C7, macro_vertebrae
  Estimate competition_score;
  int fractured_studies = 0;
  Estimate localization;
  std::vector<LevelLocalization> localization_levels;
  std::optional<AttentionAlignment> attention;
  // ROC curves (false positive rate, true positive rate) per label, for the plot; empty when undefined.
  std::array<std::vector<std::array<double, 2>>, kNumLabels> roc;
};

// Reads the inputs and computes every figure. Throws InputError (bad or inconsistent input, naming the file,
// line and row) or UsageError.
EvaluationResult evaluate(const EvaluateConfig& config);

std::string evaluation_json(const EvaluationResult& result, int indent = 2);
// The paper-style results table (plain text, for stdout).
std::string evaluation_table(const EvaluationResult& result);
// Rasterised ROC plot (one curve per label), PNG of kRocPlotSize x kRocPlotSize pixels, written atomically.
inline constexpr int kRocPlotSize = 640;
void write_roc_png(const EvaluationResult& result, const std::string& path);

}  // namespace cspine
