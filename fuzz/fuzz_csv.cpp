// fuzz_csv: untrusted bytes as the tables and reports cspine reads: read_csv, evaluate's read_labels,
// read_predictions, read_box_slices and read_report (the predict report JSON), and predict's read_test_rows.
//
// Every reader gets the same file, except read_predictions: when the input holds a form feed (\f), the part
// before it is the labels file and the part after it the predictions file; otherwise predictions are read
// against the labels read from the same file (or a fixed label set when that fails). cspine::Error is the
// expected answer to bad input; any other exception that escapes is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "cspine/error.h"
#include "eval/inputs.h"
#include "fuzz_common.h"
#include "output/predict_outputs.h"
#include "util/csv.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cspine::fuzz::quiet();
  return 0;
}

namespace {

template <typename F>
void expect_cspine_error(F&& f) {
  try {
    f();
  } catch (const cspine::Error&) {
  }
}

cspine::eval::LabelSet fixed_labels() {
  cspine::eval::LabelSet l;
  for (const char* uid : {"1.2.3", "1.2.4"}) {
    l.index[uid] = l.uids.size();
    l.uids.push_back(uid);
    l.y.push_back(cspine::eval::Row{});
  }
  return l;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string& dir = cspine::fuzz::work_dir();
  const std::string path = cspine::fuzz::write_file(dir, "table.csv", data, size);

  expect_cspine_error([&] { (void)cspine::read_csv(path, "fuzz"); });
  expect_cspine_error([&] { (void)cspine::eval::read_box_slices(path); });
  expect_cspine_error([&] { (void)cspine::eval::read_report(path); });
  expect_cspine_error([&] { (void)cspine::read_test_rows(path); });

  const auto parts = cspine::fuzz::split(data, size, "\f", 2);
  std::string labels_path = path, predictions_path = path;
  if (parts.size() == 2) {
    labels_path = cspine::fuzz::write_file(dir, "labels.csv", reinterpret_cast<const uint8_t*>(parts[0].data()),
                                           parts[0].size());
    predictions_path = cspine::fuzz::write_file(dir, "predictions.csv",
                                                reinterpret_cast<const uint8_t*>(parts[1].data()), parts[1].size());
  }
  cspine::eval::LabelSet labels;
  bool have_labels = false;
  expect_cspine_error([&] {
    labels = cspine::eval::read_labels(labels_path);
    have_labels = true;
  });
  if (!have_labels) labels = fixed_labels();
  expect_cspine_error([&] {
    std::string format;
    (void)cspine::eval::read_predictions(predictions_path, labels, &format);
  });
  return 0;
}
