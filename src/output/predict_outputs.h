// What `cspine predict` writes: one JSON entry per study (the report's `studies[]`, also the lines of the
// progress journal that --resume reads back), and the Kaggle and wide CSVs made from those entries.
#pragma once
#include <array>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cspine/error.h"
#include "cspine/predict.h"

namespace cspine {

// Entry of a scored study (status "ok").
nlohmann::json study_entry(const StudyResult& r);
// Entry of a study that failed (status "failed"): the error's exit code, its name and the message.
nlohmann::json failed_entry(const std::string& uid, ExitCode code, const std::string& message, double seconds);
// Entry of a study named by --test-csv but absent from the input (status "missing").
nlohmann::json missing_entry(const std::string& uid);

// Probabilities of an entry as {patient_overall, C1..C7}: the entry's own when its status is "ok", otherwise
// the prior (and its noisy-or).
std::array<double, 8> entry_probabilities(const nlohmann::json& entry, const std::array<double, 7>& prior);

// Probabilities as written in the CSVs: fixed, 6 decimals.
std::string format_probability(double p);

// The Kaggle CSV. Without `test_rows`, 8 rows (C1..C7, patient_overall) for every entry whose status is "ok",
// in the order of `entries`. With them, exactly those row_ids in that order, valued from the study's entry
// (prior when it failed or is missing); rows of studies without an entry yet (an interrupted run) are left out.
std::string kaggle_csv(const std::vector<nlohmann::json>& entries, const std::vector<std::string>* test_rows,
                       const std::array<double, 7>& prior);
// StudyInstanceUID,patient_overall,C1..C7 for every entry whose status is "ok".
std::string wide_csv(const std::vector<nlohmann::json>& entries);

// A Kaggle test.csv: its row_id column in file order (InvalidInputError naming the line for a row_id that is
// not <UID>_C1..C7 / <UID>_patient_overall, or that repeats), and the distinct studies in order of appearance.
struct TestRows {
  std::vector<std::string> row_ids;
  std::vector<std::string> studies;
};
TestRows read_test_rows(const std::string& path);

}  // namespace cspine
