// Readers for evaluate's inputs: labels and predictions CSVs (Kaggle long or wide), the bounding-box CSV and
// the predict report JSON. Every content error is an InputError naming the file, the line and the row.
#pragma once
#include <array>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cspine/vertebrae.h"
#include "eval/metrics.h"

namespace cspine::eval {

struct LabelSet {
  std::vector<std::string> uids;                 // file order
  std::vector<Row> y;                            // 0/1 per label, same order
  std::map<std::string, std::size_t> index;      // uid -> position
};

// Wide CSV with StudyInstanceUID, patient_overall, C1..C7 (any order, extra columns ignored), values 0 or 1.
LabelSet read_labels(const std::string& path);

// Predictions aligned with `labels` (same order). `format` receives "kaggle" or "wide".
std::vector<Row> read_predictions(const std::string& path, const LabelSet& labels, std::string* format = nullptr);

using cspine::split_row_id;  // the row_id rules live in include/cspine/vertebrae.h

// train_bounding_boxes.csv: slice_number of every box, per study.
std::map<std::string, std::vector<int>> read_box_slices(const std::string& path);

struct ReportVertebra {
  std::optional<double> probability;
  std::optional<int> key_slice_number;           // key_slice.slice_number
  std::optional<std::array<int, 2>> slice_range; // [first, last] slice_number of the vertebra
};
using ReportStudy = std::array<std::optional<ReportVertebra>, 7>;  // C1..C7

// The predict report: {"studies":[{"study_uid":..., "vertebrae":{"C1":{...}, ...}}]}.
std::map<std::string, ReportStudy> read_report(const std::string& path);

}  // namespace cspine::eval
