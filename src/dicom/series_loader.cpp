// Decoding a chosen series into a Volume: order by position, decode files in parallel straight into the
// volume (memory stays bounded to the volume plus one file per thread), skip what cannot be decoded.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>

#include "cspine/dicom.h"
#include "cspine/error.h"
#include "dicom/pixel_decode.h"
#include "image/tilt_correction.h"
#include "util/log.h"
#include "util/parallel.h"

namespace cspine {

namespace {

// Orthonormal axes from a possibly slightly non-orthogonal ImageOrientationPatient (rounded DS strings).
void orthonormal_axes(const std::array<double, 6>& o, std::array<double, 9>& direction) {
  std::array<double, 3> r{o[0], o[1], o[2]}, c{o[3], o[4], o[5]};
  auto normalize = [](std::array<double, 3>& v) {
    const double n = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    for (auto& x : v) x /= n;
  };
  normalize(r);
  const double d = r[0] * c[0] + r[1] * c[1] + r[2] * c[2];
  for (int i = 0; i < 3; ++i) c[i] -= d * r[i];
  normalize(c);
  const std::array<double, 3> n{r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]};
  for (int i = 0; i < 3; ++i) {
    direction[i * 3 + 0] = r[i];
    direction[i * 3 + 1] = c[i];
    direction[i * 3 + 2] = n[i];
  }
}

}  // namespace

LoadedSeries load_series(const SeriesInfo& series, const LoadOptions& options) {
  if (!series.eligibility.empty())
    throw SeriesError("series " + series.series_uid + " of study " + series.study_uid + " cannot be loaded: " +
                      series.eligibility);
  if (series.slices.empty()) throw SeriesError("series " + series.series_uid + " has no images");
  const auto t0 = std::chrono::steady_clock::now();

  LoadedSeries out;
  SliceOrder order = order_slices(series.slices);
  const SliceHeader& first = series.slices[order.order.front()];
  const int cols = first.columns, rows = first.rows;
  const std::size_t plane = static_cast<std::size_t>(cols) * static_cast<std::size_t>(rows);
  // Sizes come from headers: bounded before anything is allocated (each file's data was checked against its
  // header when it was indexed, and is checked again when it is decoded).
  if (cols <= 0 || rows <= 0 || cols > kMaxMatrix || rows > kMaxMatrix)
    throw SeriesError("'" + first.path + "': a " + std::to_string(cols) + "x" + std::to_string(rows) +
                      " matrix cannot be loaded (1.." + std::to_string(kMaxMatrix) + ")");
  if (plane * order.order.size() > kMaxVolumeVoxels)
    throw SeriesError("series " + series.series_uid + " would be a " + std::to_string(cols) + "x" +
                      std::to_string(rows) + "x" + std::to_string(order.order.size()) + " volume, over the " +
                      std::to_string(kMaxVolumeVoxels) + "-voxel limit");
  HuBuffer hu(plane * order.order.size());

  // One task per file: a multi-frame file is decoded once for all of its frames.
  std::map<std::string, std::vector<dicom::FrameTarget>> by_file;
  std::map<std::string, std::vector<std::size_t>> slots_by_file;
  for (std::size_t k = 0; k < order.order.size(); ++k) {
    const SliceHeader& h = series.slices[order.order[k]];
    by_file[h.path].push_back({&h, hu.data() + k * plane, options.stored_values});
    slots_by_file[h.path].push_back(k);
  }
  std::vector<std::pair<std::string, std::vector<dicom::FrameTarget>>> tasks(by_file.begin(), by_file.end());
  std::vector<std::string> failures(tasks.size());
  std::vector<dicom::DecodeStats> stats(tasks.size());
  parallel_for(tasks.size(), options.threads, [&](std::size_t t) {
    try {
      dicom::decode_frames(tasks[t].first, tasks[t].second, options.padding_hu, &stats[t]);
    } catch (const std::exception& e) {
      failures[t] = e.what();
    }
  });

  std::vector<char> failed_slot(order.order.size(), 0);
  std::size_t clamped = 0, stray_files = 0;
  std::string first_stray;
  for (std::size_t t = 0; t < tasks.size(); ++t) {
    clamped += stats[t].clamped;
    if (stats[t].stray_bits && failures[t].empty() && stray_files++ == 0) first_stray = tasks[t].first;
    if (failures[t].empty()) continue;
    for (std::size_t k : slots_by_file[tasks[t].first]) failed_slot[k] = 1;
    out.warnings.push_back({warn::skipped_file, "slice skipped: " + failures[t]});
    CSPINE_WARN("[{}] slice skipped: {}", warn::skipped_file, failures[t]);
  }
  const std::size_t n_failed = static_cast<std::size_t>(std::count(failed_slot.begin(), failed_slot.end(), 1));
  if (n_failed == order.order.size())
    throw SeriesError("no slice of series " + series.series_uid + " could be decoded (first error: " +
                      out.warnings.front().message + ")");

  if (n_failed > 0) {
    // Compact the volume in place and recompute the geometry from what is left, so the resulting gap
    // is reported by the same missing-slices check as a gap in the original files.
    std::vector<SliceHeader> survivors;
    std::vector<std::size_t> survivor_index;  // index into series.slices of each survivor
    std::size_t w = 0;
    for (std::size_t k = 0; k < order.order.size(); ++k) {
      if (failed_slot[k]) continue;
      if (w != k)
        std::copy_n(hu.begin() + static_cast<std::ptrdiff_t>(k * plane), plane,
                    hu.begin() + static_cast<std::ptrdiff_t>(w * plane));
      survivors.push_back(series.slices[order.order[k]]);
      survivor_index.push_back(order.order[k]);
      ++w;
    }
    hu.resize(w * plane);
    hu.shrink_to_fit();
    SliceOrder reordered = order_slices(survivors);  // survivors are in order already: same sequence
    for (auto& x : reordered.order) x = survivor_index[x];
    for (const auto& w0 : order.warnings)
      if (w0.code == warn::duplicate_position) reordered.warnings.insert(reordered.warnings.begin(), w0);
    order = std::move(reordered);
  }
  if (clamped > 0)
    out.warnings.push_back({warn::value_clamped, std::to_string(clamped) +
                                                     " voxel value(s) fell outside the int16 range after rescale and were clamped"});
  if (stray_files > 0)
    out.warnings.push_back(
        {warn::high_bits_set, std::to_string(stray_files) + " file(s) (first: " + first_stray +
                                  ") have pixel bits set above BitsStored=" + std::to_string(first.bits_stored) +
                                  "; they were ignored as the standard says. If metal or contrast looks dark, the "
                                  "header's BitsStored is wrong"});
  for (const auto& x : series.transfer_syntaxes)
    if (transfer_syntax_is_lossy(x))
      out.warnings.push_back({warn::lossy_compression, "pixel data uses lossy compression (" + transfer_syntax_name(x) +
                                                           "): HU values are approximate"});

  Volume& v = out.volume;
  v.size = {cols, rows, static_cast<int>(order.order.size())};
  const auto& ps = *first.pixel_spacing;  // (row spacing, column spacing)
  const double dz = order.spacing > 0 ? order.spacing : first.slice_thickness.value_or(1.0);
  v.spacing = {ps[1], ps[0], dz > 0 ? dz : 1.0};
  orthonormal_axes(*first.orientation, v.direction);
  const SliceHeader& lowest = series.slices[order.order.front()];
  v.origin = *lowest.position;
  v.hu = std::move(hu);
  v.slice_positions.resize(order.positions.size());
  for (std::size_t k = 0; k < order.positions.size(); ++k) v.slice_positions[k] = order.positions[k] - order.positions[0];
  for (std::size_t k : order.order) {
    out.slice_files.push_back(series.slices[k].path);
    out.slice_sources.push_back({series.slices[k].sop_instance_uid, series.slices[k].sop_class_uid, series.slices[k].frame});
    out.slice_numbers.push_back(series.slices[k].instance_number.value_or(static_cast<int>(out.slice_numbers.size()) + 1));
  }

  if (order.tilt_degrees > 0.1) {
    std::string note = "; not corrected (tilt correction is off)";
    if (options.stored_values) {
      note = "; not corrected (the model reads the stored values as they are)";
    } else if (options.correct_tilt) {
      std::vector<std::array<double, 3>> positions;
      for (std::size_t k : order.order) positions.push_back(*series.slices[k].position);
      const double shift = correct_gantry_tilt(v, positions, options.padding_hu, options.threads);
      note = "; corrected by shifting each slice in its plane (up to " + std::to_string(std::lround(shift)) + " mm)";
    }
    for (auto& w : order.warnings)
      if (w.code == warn::gantry_tilt) w.message += note;
  }

  Warnings all = order.warnings;
  all.insert(all.end(), out.warnings.begin(), out.warnings.end());
  out.warnings = std::move(all);
  out.geometry = std::move(order);
  for (const auto& w : out.geometry.warnings) CSPINE_WARN("[{}] series {}: {}", w.code, series.series_uid, w.message);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CSPINE_INFO("loaded series {}: {}x{}x{} voxels, spacing {:.3f}x{:.3f}x{:.3f} mm in {:.2f} s", series.series_uid,
              v.size[0], v.size[1], v.size[2], v.spacing[0], v.spacing[1], v.spacing[2], secs);
  return out;
}

LoadedSeries load_study(const StudyIndex& index, const std::string& study_uid, const LoadOptions& options,
                        const std::string& series_uid) {
  const StudyInfo* study = nullptr;
  if (study_uid.empty()) {
    if (index.studies.size() != 1) {
      std::string list;
      for (const auto& s : index.studies) list += " " + s.study_uid;
      throw UsageError(std::to_string(index.studies.size()) + " studies found under '" + index.root +
                       "'; name one with --study:" + list);
    }
    study = &index.studies.front();
  } else {
    for (const auto& s : index.studies)
      if (s.study_uid == study_uid) study = &s;
    if (!study) throw InputError("study " + study_uid + " not found under '" + index.root + "'");
  }
  const SeriesInfo* chosen = nullptr;
  if (!series_uid.empty()) {
    for (const auto& s : study->series)
      if (s.series_uid == series_uid) chosen = &s;
    if (!chosen) throw InputError("series " + series_uid + " not found in study " + study->study_uid);
  } else {
    if (study->selected_series < 0) throw SeriesError("study " + study->study_uid + ": " + study->selection_reason);
    chosen = &study->series[static_cast<std::size_t>(study->selected_series)];
  }
  const SeriesInfo& s = *chosen;
  for (const auto& w : s.warnings) CSPINE_WARN("[{}] series {}: {}", w.code, s.series_uid, w.message);
  LoadedSeries loaded = load_series(s, options);
  loaded.warnings.insert(loaded.warnings.begin(), s.warnings.begin(), s.warnings.end());
  return loaded;
}

}  // namespace cspine
