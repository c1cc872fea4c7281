#include "output/writers.h"

#include <sys/resource.h>

#include <cmath>
#include <ctime>
#include <filesystem>

#include "cspine/runtime.h"
#include "cspine/volume.h"
#include "util/atomic_file.h"
#include "util/text.h"

namespace cspine {

namespace {

std::string now_iso() {
  const auto t = std::time(nullptr);
  char buf[32];
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

double peak_rss_mb() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux: KiB
}

void KaggleCsvWriter::snapshot(const BatchSnapshot& s) {
  write_text_atomically(path_, kaggle_csv(s.entries, test_ ? &test_->row_ids : nullptr, prior_));
}

void WideCsvWriter::snapshot(const BatchSnapshot& s) {
  write_text_atomically(path_, wide_csv(s.entries));
}

void ReportWriter::snapshot(const BatchSnapshot& s) {
  nlohmann::json report = fixed_;
  report["cspine"] = version();
  report["created"] = now_iso();
  report["complete"] = s.complete;
  report["peak_rss_mb"] = std::round(peak_rss_mb());
  report["studies"] = s.entries;
  write_text_atomically(path_, dump_json(report, 1) + "\n");
}

void NiftiMaskWriter::study(const StudyResult& r) {
  write_label_nifti(r.geometry, r.label_map(), (std::filesystem::path(dir_) / (r.study_uid + ".nii.gz")).string());
}

}  // namespace cspine
