// Finding studies: walk the tree, read headers only (in parallel), group by study and series, and choose
// the series to score. File names and extensions carry no meaning: real exports name slices anything.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <mutex>
#include <set>
#include <sstream>

#include "cspine/dicom.h"
#include "cspine/error.h"
#include "dicom/dicom_header.h"
#include "util/log.h"
#include "util/parallel.h"

namespace fs = std::filesystem;

namespace cspine {

namespace {

const char* kCtImageStorage = "1.2.840.10008.5.1.4.1.1.2";
const char* kEnhancedCtImageStorage = "1.2.840.10008.5.1.4.1.1.2.1";
const char* kMediaStorageDirectory = "1.2.840.10008.1.3.10";

std::vector<std::string> list_files(const std::string& root) {
  std::error_code ec;
  const fs::path p(root);
  if (!fs::exists(p, ec)) throw InputError("input path '" + root + "' does not exist");
  std::vector<std::string> files;
  if (fs::is_regular_file(p, ec)) {
    files.push_back(p.string());
    return files;
  }
  if (!fs::is_directory(p, ec)) throw InputError("input path '" + root + "' is neither a file nor a folder");
  fs::recursive_directory_iterator it(p, fs::directory_options::skip_permission_denied, ec), end;
  if (ec) throw InputError("cannot list '" + root + "': " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) {
      CSPINE_WARN("cannot list part of '{}': {}", root, ec.message());
      ec.clear();
      continue;
    }
    std::error_code fec;
    if (it->is_regular_file(fec)) files.push_back(it->path().string());
  }
  std::sort(files.begin(), files.end());  // deterministic discovery order
  return files;
}

std::string parent_folder(const std::string& path) { return fs::path(path).parent_path().string(); }

std::string round_orientation(const std::optional<std::array<double, 6>>& o) {
  if (!o) return "none";
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(2);
  for (double v : *o) os << (std::abs(v) < 0.005 ? 0.0 : v) << ',';
  return os.str();
}

bool same_orientation(const std::array<double, 6>& a, const std::array<double, 6>& b) {
  for (int i = 0; i < 6; ++i)
    if (std::abs(a[i] - b[i]) > 1e-3) return false;
  return true;
}

std::string short_name(const std::string& path) { return fs::path(path).filename().string(); }

// Splits off images that do not belong to the volume of their series (a localizer exported under the same
// SeriesInstanceUID, a differently oriented reformat) and records why the series can or cannot be scored.
// The matrix and pixel spacing that a slice contributes to a volume; slices of one volume must agree on it.
struct Geometry {
  int rows = 0, columns = 0;
  std::optional<std::array<double, 2>> spacing;
  bool operator==(const Geometry& o) const {
    if (rows != o.rows || columns != o.columns || spacing.has_value() != o.spacing.has_value()) return false;
    if (!spacing) return true;
    for (int i = 0; i < 2; ++i)
      if (std::abs((*spacing)[i] - (*o.spacing)[i]) > 1e-4 * std::max(1.0, std::abs((*spacing)[i]))) return false;
    return true;
  }
  std::string text() const {
    std::ostringstream os;
    os << columns << "x" << rows;
    if (spacing) os << " at " << (*spacing)[1] << "x" << (*spacing)[0] << " mm";
    return os.str();
  }
};

// Keeps the slices that share the most common value of `key`; returns how many were left out and the first.
template <typename Key, typename KeyOf>
std::size_t keep_majority(std::vector<SliceHeader>& slices, KeyOf key_of, Key& kept_key, std::string& first_other,
                          Key& other_key) {
  std::vector<std::pair<Key, std::size_t>> groups;
  for (const auto& h : slices) {
    const Key k = key_of(h);
    auto g = std::find_if(groups.begin(), groups.end(), [&](auto& p) { return p.first == k; });
    if (g == groups.end()) groups.push_back({k, 1});
    else ++g->second;
  }
  if (groups.size() <= 1) return 0;
  const auto best = std::max_element(groups.begin(), groups.end(), [](auto& a, auto& b) { return a.second < b.second; });
  kept_key = best->first;
  std::vector<SliceHeader> same;
  std::size_t other = 0;
  for (auto& h : slices) {
    if (!(key_of(h) == kept_key)) {
      if (other++ == 0) {
        first_other = h.path;
        other_key = key_of(h);
      }
      continue;
    }
    same.push_back(std::move(h));
  }
  slices = std::move(same);
  return other;
}

// Splits off images that do not belong to the volume of their series (a localizer exported under the same
// SeriesInstanceUID, a differently oriented reformat, a slice of another matrix size or pixel spacing, a file
// whose header disagrees with its data) and records why the series can or cannot be scored.
void check_series(SeriesInfo& s) {
  std::vector<SliceHeader> kept, dropped;
  // Images whose header disagrees with their pixel data: left out, each named (up to a few) with the reason.
  std::size_t defects = 0;
  std::string first_defect;
  for (auto& h : s.slices) {
    if (h.defect.empty()) {
      kept.push_back(std::move(h));
      continue;
    }
    if (defects++ == 0) first_defect = h.defect;
    if (defects <= 5) s.warnings.push_back({warn::skipped_file, "image left out: " + h.defect});
  }
  if (defects > 5)
    s.warnings.push_back({warn::skipped_file, std::to_string(defects - 5) + " more image(s) left out for the same kind of reason"});
  s.slices = std::move(kept);
  kept.clear();
  if (s.slices.empty() && defects > 0) {
    s.eligibility = "every image was left out (first: " + first_defect + ")";
    return;
  }

  // Localizers mixed into an otherwise axial series.
  const bool any_non_localizer = std::any_of(s.slices.begin(), s.slices.end(), [](auto& h) { return !h.is_localizer(); });
  for (auto& h : s.slices) (any_non_localizer && h.is_localizer() ? dropped : kept).push_back(std::move(h));
  if (!dropped.empty())
    s.warnings.push_back({warn::mixed_series, std::to_string(dropped.size()) +
                                                  " localizer image(s) inside the series were left out (first: " +
                                                  short_name(dropped.front().path) + ")"});
  s.slices = std::move(kept);

  // Majority orientation wins; the rest is another acquisition or a reformat.
  {
    std::string first_other;
    struct Orientation {
      std::optional<std::array<double, 6>> o;
      // A slice without orientation joins any group (the eligibility check below refuses it by name).
      bool operator==(const Orientation& b) const { return !o || !b.o || same_orientation(*o, *b.o); }
    };
    Orientation kept_o, other_k;
    const std::size_t other = keep_majority<Orientation>(
        s.slices, [](const SliceHeader& h) { return Orientation{h.orientation}; }, kept_o, first_other, other_k);
    if (other > 0)
      s.warnings.push_back({warn::mixed_series, std::to_string(other) +
                                                    " image(s) with another orientation were left out (first: " +
                                                    short_name(first_other) + ")"});
  }
  // Majority matrix size and pixel spacing win: one odd slice is dropped with a warning instead of making the
  // whole series unusable.
  {
    Geometry kept_g, other_g;
    std::string first_other;
    const std::size_t other = keep_majority<Geometry>(
        s.slices, [](const SliceHeader& h) { return Geometry{h.rows, h.columns, h.pixel_spacing}; }, kept_g,
        first_other, other_g);
    if (other > 0)
      s.warnings.push_back({warn::mixed_series, std::to_string(other) + " image(s) of another matrix size or pixel "
                                                    "spacing were left out (first: '" + first_other + "', " +
                                                    other_g.text() + " where the series is " + kept_g.text() + ")"});
  }

  std::set<std::string> xfers;
  for (const auto& h : s.slices) xfers.insert(h.transfer_syntax_uid);
  s.transfer_syntaxes.assign(xfers.begin(), xfers.end());
  if (s.slices.empty()) {
    s.eligibility = "no images left after removing localizers and other orientations";
    return;
  }
  const SliceHeader& f = s.slices.front();
  s.modality = f.modality;
  s.description = f.series_description;
  s.series_number = f.series_number;

  // Every distinct reason is kept (the first file that shows it is named), so a user fixes all at once.
  std::set<std::string> kinds;
  auto refuse = [&](const char* kind, const std::string& why) {
    if (!kinds.insert(kind).second) return;
    s.eligibility += (s.eligibility.empty() ? "" : "; ") + why;
  };
  const auto q = [](const std::string& path) { return "'" + path + "'"; };
  for (const auto& h : s.slices)
    if (!h.has_pixel_data) refuse("pixels", q(h.path) + " has no pixel data (7FE0,0010)");
  if (f.is_secondary_capture()) refuse("sc", "secondary capture (screen capture), not an acquired CT image");
  if (f.modality != "CT" && f.sop_class_uid != kCtImageStorage && f.sop_class_uid != kEnhancedCtImageStorage)
    refuse("modality", "not CT (modality '" + f.modality + "', SOP class " + f.sop_class_uid + ")");
  if (f.is_localizer()) refuse("localizer", "localizer (scout) image");
  for (const auto& h : s.slices) {
    if (h.samples_per_pixel != 1)
      refuse("colour", q(h.path) + " is a colour image (" + std::to_string(h.samples_per_pixel) + " samples per pixel)");
    if (!h.pixel_spacing) refuse("spacing", q(h.path) + " has no PixelSpacing: the voxel size is unknown");
    if (!h.position) refuse("position", q(h.path) + " has no ImagePositionPatient: the slice cannot be placed");
    if (!h.orientation) refuse("orientation", q(h.path) + " has no ImageOrientationPatient: the slice cannot be placed");
    if (h.rows <= 0 || h.columns <= 0) refuse("matrix", q(h.path) + " has no Rows/Columns");
  }
  if (s.eligibility.empty() && f.orientation) {
    const auto& o = *f.orientation;
    const double nx = o[1] * o[5] - o[2] * o[4], ny = o[2] * o[3] - o[0] * o[5], nz = o[0] * o[4] - o[1] * o[3];
    const double n_len = std::sqrt(nx * nx + ny * ny + nz * nz);
    if (n_len < 1e-6) refuse("orientation", q(f.path) + " has a degenerate ImageOrientationPatient");
    else if (std::abs(nz) / n_len < std::cos(45.0 * 3.14159265358979 / 180.0))
      refuse("axial", "not axial (slice normal more than 45 degrees from the patient's long axis: a sagittal or "
                      "coronal series)");
  }
}

}  // namespace

StudyIndex scan_studies(const std::string& path, const ScanOptions& options) {
  return scan_files(path, list_files(path), options);
}

std::vector<std::string> list_input_files(const std::string& path) { return list_files(path); }

StudyIndex scan_files(const std::string& path, const std::vector<std::string>& files, const ScanOptions& options) {
  StudyIndex index;
  index.root = path;
  index.files_seen = files.size();

  std::vector<std::vector<SliceHeader>> headers(files.size());
  std::vector<std::string> errors(files.size());
  std::vector<char> not_dicom(files.size(), 0);
  const auto t0 = std::chrono::steady_clock::now();
  parallel_for(files.size(), options.threads, [&](std::size_t i) {
    try {
      headers[i] = read_slice_headers(files[i]);
      // A DICOMDIR (the index of a CD or DVD export) is DICOM but no image, and has no StudyInstanceUID:
      // counted as a study it would make every exported folder look like two studies.
      if (!headers[i].empty() && headers[i].front().sop_class_uid == kMediaStorageDirectory) {
        headers[i].clear();
        not_dicom[i] = 1;
      }
    } catch (const dicom::NotDicom&) {
      not_dicom[i] = 1;
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  });

  // Group: study -> series. Missing UIDs fall back to the folder plus geometry.
  std::map<std::string, std::map<std::string, SeriesInfo>> groups;
  std::set<std::string> missing_uid_folders;
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (not_dicom[i]) {
      CSPINE_DEBUG("skipping {} (not a DICOM image)", files[i]);
      continue;
    }
    if (!errors[i].empty()) {
      ++index.skipped_files;
      CSPINE_WARN("[{}] {}", warn::skipped_file, errors[i]);
      continue;
    }
    ++index.dicom_files;
    for (auto& h : headers[i]) {
      std::string study = h.study_uid, series = h.series_uid;
      if (study.empty() || series.empty()) missing_uid_folders.insert(parent_folder(h.path));
      if (study.empty()) study = "folder:" + parent_folder(h.path);
      if (series.empty())
        series = "folder:" + parent_folder(h.path) + "|" + round_orientation(h.orientation) + "|" +
                 std::to_string(h.rows) + "x" + std::to_string(h.columns);
      SeriesInfo& s = groups[study][series];
      s.study_uid = study;
      s.series_uid = series;
      s.slices.push_back(std::move(h));
    }
  }
  // An unreadable file is reported with the series that lives in its folder (it is most likely one of its
  // slices), so the study's own report shows it; when its folder holds images of several studies (or series),
  // nothing says which one it belonged to, so it goes with the whole index instead of an unrelated study.
  std::map<std::string, SeriesInfo*> series_by_folder;
  std::set<std::string> shared_folders;
  for (auto& [study_uid, series_map] : groups)
    for (auto& [series_uid, s] : series_map)
      for (const auto& h : s.slices) {
        const std::string folder = parent_folder(h.path);
        const auto [it, added] = series_by_folder.emplace(folder, &s);
        if (!added && it->second != &s) shared_folders.insert(folder);
      }
  for (const auto& f : shared_folders) series_by_folder.erase(f);
  std::string first_error;
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (errors[i].empty()) continue;
    if (first_error.empty()) first_error = errors[i];
    const auto it = series_by_folder.find(parent_folder(files[i]));
    Warning w{warn::skipped_file, "file skipped: " + errors[i]};
    if (it != series_by_folder.end()) it->second->warnings.push_back(std::move(w));
    else index.warnings.push_back(std::move(w));
  }
  CSPINE_INFO("indexed {}: {} file(s), {} DICOM image file(s), {} unreadable, in {:.2f} s", path, files.size(),
              index.dicom_files, index.skipped_files,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  if (index.dicom_files == 0) {
    if (index.skipped_files > 0)
      throw NoDicomError("no readable DICOM under '" + path + "': " + std::to_string(index.skipped_files) +
                         " DICOM file(s) could not be read (first: " + first_error + ")");
    throw NoDicomError("no DICOM files under '" + path + "' (" + std::to_string(files.size()) + " file(s) looked at)");
  }

  for (auto& [study_uid, series_map] : groups) {
    StudyInfo study;
    study.study_uid = study_uid;
    for (auto& [series_uid, s] : series_map) {
      check_series(s);
      if (s.series_uid.rfind("folder:", 0) == 0 || s.study_uid.rfind("folder:", 0) == 0)
        s.warnings.push_back({warn::missing_uid, "StudyInstanceUID or SeriesInstanceUID is empty; images were grouped by folder and geometry"});
      study.series.push_back(std::move(s));
    }
    // Choose: eligible, then most slices, then lowest SeriesNumber.
    int best = -1;
    std::size_t eligible = 0;
    for (std::size_t k = 0; k < study.series.size(); ++k) {
      const auto& s = study.series[k];
      if (!s.eligibility.empty()) continue;
      ++eligible;
      if (best < 0) {
        best = static_cast<int>(k);
        continue;
      }
      const auto& b = study.series[static_cast<std::size_t>(best)];
      if (s.slices.size() > b.slices.size() ||
          (s.slices.size() == b.slices.size() && s.series_number.value_or(1 << 30) < b.series_number.value_or(1 << 30)))
        best = static_cast<int>(k);
    }
    if (best >= 0) {
      auto& chosen = study.series[static_cast<std::size_t>(best)];
      chosen.selected = true;
      study.selected_series = best;
      study.selection_reason = "CT, axial, " + std::to_string(chosen.slices.size()) + " images" +
                               (eligible > 1 ? ", the most of " + std::to_string(eligible) + " eligible series" : "") +
                               (study.series.size() > eligible
                                    ? " (" + std::to_string(study.series.size() - eligible) + " other series not eligible)"
                                    : "");
      CSPINE_INFO("study {}: chose series {} ({})", study_uid, chosen.series_uid, study.selection_reason);
    } else {
      study.selection_reason = "no series can be scored:";
      for (const auto& s : study.series) study.selection_reason += " series " + s.series_uid + ": " + s.eligibility + ";";
      study.selection_reason.pop_back();
      CSPINE_WARN("study {}: {}", study_uid, study.selection_reason);
    }
    index.studies.push_back(std::move(study));
  }
  return index;
}

}  // namespace cspine
