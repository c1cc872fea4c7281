#include "output/writers.h"

#include <sys/resource.h>

#include <cmath>
#include <ctime>
#include <filesystem>

#include "cspine/runtime.h"
#include "cspine/volume.h"
#include "util/atomic_file.h"
#include "util/npy.h"
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

void StageDumpWriter::study(const StudyResult& r) {
  if (!r.intermediates) return;
  const StageIntermediates& in = *r.intermediates;
  const std::filesystem::path dir = std::filesystem::path(dir_) / r.study_uid;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw OutputError("cannot create '" + dir.string() + "': " + ec.message());
  const auto u = [](auto x) { return static_cast<std::size_t>(x); };
  write_npy_u8((dir / "labels.npy").string(), in.labels, {u(r.labels.slices), u(r.labels.rows), u(r.labels.cols)});
  std::vector<std::size_t> shape;
  for (int64_t d : in.cls_shape) shape.push_back(u(d));
  if (!in.cls_input.empty()) write_npy_f32((dir / "cls_input.npy").string(), in.cls_input, shape);
  const auto number = [&](int k) { return r.slice_numbers.at(u(k)); };
  nlohmann::json j;
  j["study_uid"] = r.study_uid;
  nlohmann::json order = nlohmann::json::array();
  for (int k : in.order) order.push_back(number(k));
  j["slice_numbers"] = order;  // InstanceNumber of each model slice, in model order
  j["labels_shape"] = {r.labels.slices, r.labels.rows, r.labels.cols};
  if (r.study_box) {
    const StudyBox& b = *r.study_box;
    j["box"] = {{"slice0", b.slice0}, {"slice1", b.slice1}, {"row0", b.row0}, {"row1", b.row1},
                {"col0", b.col0},     {"col1", b.col1},     {"grid", {b.grid_rows, b.grid_cols}}};
    j["slice_class"] = b.slice_class;
  }
  nlohmann::json vertebrae = nlohmann::json::array();
  for (std::size_t k = 0; k < r.vertebrae.size(); ++k) {
    const VertebraResult& v = r.vertebrae[k];
    nlohmann::json picked = nlohmann::json::array();
    for (int p : v.picked) picked.push_back(number(p));
    vertebrae.push_back({{"cid", static_cast<int>(k) + 1},
                         {"fallback", fallback_name(v.fallback)},
                         {"picked_slice_numbers", picked},
                         {"probability", v.probability}});
  }
  j["vertebrae"] = vertebrae;
  j["classified"] = in.classified;
  j["cls_input_shape"] = in.cls_shape;
  j["members"] = in.members;
  j["member_logits"] = in.member_logits;
  j["patient_overall"] = r.patient_overall;
  write_text_atomically((dir / "stages.json").string(), dump_json(j, 1) + "\n");
}

}  // namespace cspine
