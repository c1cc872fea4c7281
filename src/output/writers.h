// What `cspine predict` writes, behind one small interface. The batch runner hands every writer each scored
// study (per-study files: label maps, later DICOM objects), each finished study's report entry (the journal
// line), and, every few seconds and at the end, a snapshot of all entries in output order (whole-batch files:
// the Kaggle CSV, the wide CSV, the report). The pipeline itself writes nothing. A new output format is a new
// Writer here plus its option in src/cli/cmd_predict.cpp and src/pipeline/batch.{h,cpp}.
#pragma once
#include <array>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cspine/predict.h"
#include "output/predict_outputs.h"

namespace cspine {

struct BatchSnapshot {
  const std::vector<nlohmann::json>& entries;  // report entries (ok, failed, missing) in output order
  bool complete = false;                       // false while the batch runs, and after an interrupt
};

class Writer {
public:
  virtual ~Writer() = default;
  // A study the models scored, before its report entry is made (the time spent here is its `masks` stage).
  virtual void study(const StudyResult&) {}
  // Every finished study's report entry, scored or failed.
  virtual void entry(const nlohmann::json&) {}
  // All entries so far.
  virtual void snapshot(const BatchSnapshot&) {}
  // Warnings about the last study() (e.g. an output skipped for it); the batch adds them to its report entry.
  virtual Warnings take_warnings() { return {}; }
};

// `-o`: the Kaggle CSV (exactly test.csv's rows when `test` is given, the prior for failed or missing studies).
class KaggleCsvWriter : public Writer {
public:
  KaggleCsvWriter(std::string path, std::optional<TestRows> test, const std::array<double, 7>& prior)
      : path_(std::move(path)), test_(std::move(test)), prior_(prior) {}
  void snapshot(const BatchSnapshot& s) override;

private:
  std::string path_;
  std::optional<TestRows> test_;
  std::array<double, 7> prior_;
};

// `--wide-csv`: StudyInstanceUID,patient_overall,C1..C7 per scored study.
class WideCsvWriter : public Writer {
public:
  explicit WideCsvWriter(std::string path) : path_(std::move(path)) {}
  void snapshot(const BatchSnapshot& s) override;

private:
  std::string path_;
};

// `--report`: the JSON report: `fixed` (models, device, settings) plus creation time, completeness, peak memory
// and the studies.
class ReportWriter : public Writer {
public:
  ReportWriter(std::string path, nlohmann::json fixed) : path_(std::move(path)), fixed_(std::move(fixed)) {}
  void snapshot(const BatchSnapshot& s) override;

private:
  std::string path_;
  nlohmann::json fixed_;
};

// `--save-masks DIR`: DIR/<UID>.nii.gz, the vertebra label map on the CT grid with the CT's geometry.
class NiftiMaskWriter : public Writer {
public:
  explicit NiftiMaskWriter(std::string dir) : dir_(std::move(dir)) {}
  void study(const StudyResult& r) override;

private:
  std::string dir_;
};

// `--dump-stages DIR`: DIR/<UID>/ with what each stage produced (needs PredictOptions::keep_intermediates):
// labels.npy (uint8, decoded labels before cleanup, model slice order, segmentation grid), cls_input.npy (float32,
// the classifier's input), stages.json (slice order as InstanceNumbers, study box and slice classes, per vertebra
// the fallback and picked slices' InstanceNumbers, member logits, probabilities). For comparing a port with the
// code it came from (tests/python/test_rawe_parity.py).
class StageDumpWriter : public Writer {
public:
  explicit StageDumpWriter(std::string dir) : dir_(std::move(dir)) {}
  void study(const StudyResult& r) override;

private:
  std::string dir_;
};

// Peak resident memory of this process so far, in MB.
double peak_rss_mb();

}  // namespace cspine
