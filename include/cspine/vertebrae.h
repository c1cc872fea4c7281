// The cervical vertebrae and the RSNA 2022 (Kaggle) row_id rules, in one place: predict's outputs, evaluate's
// readers, synth's label files and the model contract all name C1..C7 and build or split row_ids through this.
#pragma once
#include <array>
#include <optional>
#include <string>
#include <utility>

namespace cspine {

inline constexpr int kVertebrae = 7;  // C1..C7; vertebra k (0-based) is label k + 1 in label maps
inline constexpr std::array<const char*, kVertebrae> kVertebraNames = {"C1", "C2", "C3", "C4", "C5", "C6", "C7"};

// The 8 labels of the competition, in its order: patient_overall, then C1..C7 (label index 0..7).
inline constexpr int kNumLabels = kVertebrae + 1;
inline constexpr std::array<const char*, kNumLabels> kLabelNames = {"patient_overall", "C1", "C2", "C3",
                                                                    "C4",              "C5", "C6", "C7"};

// "<uid>_C3", "<uid>_patient_overall": the Kaggle row_id of label `label` (0..7) of a study.
std::string row_id(const std::string& study_uid, int label);

// Splits a Kaggle row_id at its last `_C1`..`_C7` or `_patient_overall` suffix: (uid, label index 0..7), or
// nullopt when it has neither.
std::optional<std::pair<std::string, int>> split_row_id(const std::string& row_id);

}  // namespace cspine
