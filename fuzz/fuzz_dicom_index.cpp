// fuzz_dicom_index: untrusted bytes as the files of a study folder -> scan_studies (DICOM header parsing,
// multi-frame functional groups, grouping by study and series, series choice), then, as load_series does
// first, order_slices on every series that qualifies.
//
// The input is split at each "FUZZSPLT" into up to 8 files (f0, f1, ...), so that one input can hold several
// slices of a series; an input without the marker is one file. cspine::Error is the expected answer to bad
// input; anything else that escapes, a crash or a sanitizer report is a finding.
#include <cstddef>
#include <cstdint>

#include "cspine/dicom.h"
#include "cspine/error.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cspine::fuzz::quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string dir = cspine::fuzz::fresh_dir("study");
  const auto parts = cspine::fuzz::split(data, size, "FUZZSPLT", 8);
  for (std::size_t i = 0; i < parts.size(); ++i)
    cspine::fuzz::write_file(dir, "f" + std::to_string(i), reinterpret_cast<const uint8_t*>(parts[i].data()),
                             parts[i].size());
  cspine::ScanOptions options;
  options.threads = 1;
  try {
    const cspine::StudyIndex index = cspine::scan_studies(dir, options);
    for (const auto& study : index.studies)
      for (const auto& series : study.series)
        if (series.eligibility.empty() && !series.slices.empty()) (void)cspine::order_slices(series.slices);
  } catch (const cspine::Error&) {
  }
  return 0;
}
