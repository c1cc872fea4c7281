// Spatial ordering of slices. Why by position: file names and InstanceNumber are set by whoever exported
// the series and are often reversed, restarted or missing; ImagePositionPatient projected on the slice
// normal is the only order that always matches the anatomy (dcm2niix does the same).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "cspine/dicom.h"
#include "cspine/error.h"

namespace cspine {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kDuplicateTolerance = 0.01;  // mm: closer than this along the normal is the same slice

std::array<double, 3> cross(const std::array<double, 3>& a, const std::array<double, 3>& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
double dot(const std::array<double, 3>& a, const std::array<double, 3>& b) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}
double norm(const std::array<double, 3>& a) { return std::sqrt(dot(a, a)); }

std::string base_name(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string fmt(double v, int precision = 2) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(precision);
  os << v;
  return os.str();
}

std::string describe(const SliceHeader& h) {
  std::string s = base_name(h.path);
  if (h.number_of_frames > 1) s += " frame " + std::to_string(h.frame + 1);
  return s;
}

}  // namespace

SliceOrder order_slices(const std::vector<SliceHeader>& slices) {
  SliceOrder out;
  if (slices.empty()) return out;
  for (const auto& s : slices) {
    if (!s.position || !s.orientation)
      throw SeriesError("'" + s.path + "' has no " + (!s.position ? "ImagePositionPatient" : "ImageOrientationPatient") +
                        ": cannot place the slice in space");
  }
  const auto& o = *slices.front().orientation;
  std::array<double, 3> row{o[0], o[1], o[2]}, col{o[3], o[4], o[5]};
  std::array<double, 3> n = cross(row, col);
  const double nn = norm(n);
  if (nn < 1e-6) throw SeriesError("'" + slices.front().path + "' has a degenerate ImageOrientationPatient");
  for (auto& v : n) v /= nn;
  out.normal = n;

  std::vector<double> proj(slices.size());
  for (std::size_t i = 0; i < slices.size(); ++i) proj[i] = dot(*slices[i].position, n);
  std::vector<std::size_t> idx(slices.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
    if (proj[a] != proj[b]) return proj[a] < proj[b];
    // Same position: prefer the lower InstanceNumber so the choice of the duplicate kept is stable.
    return slices[a].instance_number.value_or(0) < slices[b].instance_number.value_or(0);
  });

  // Drop duplicates (keep the first of each position).
  std::vector<std::string> dup_examples;
  std::size_t dup_count = 0;
  for (std::size_t i : idx) {
    if (!out.order.empty() && std::abs(proj[i] - proj[out.order.back()]) < kDuplicateTolerance) {
      ++dup_count;
      if (dup_examples.size() < 5)
        dup_examples.push_back(describe(slices[i]) + " (same position as " + describe(slices[out.order.back()]) +
                               ", " + fmt(proj[i]) + " mm)");
      continue;
    }
    out.order.push_back(i);
  }
  if (dup_count > 0) {
    std::string msg = std::to_string(dup_count) + " slice(s) share a position with another slice and were dropped: ";
    for (std::size_t k = 0; k < dup_examples.size(); ++k) msg += (k ? "; " : "") + dup_examples[k];
    if (dup_count > dup_examples.size()) msg += "; ...";
    out.warnings.push_back({warn::duplicate_position, msg});
  }

  for (std::size_t i : out.order) out.positions.push_back(proj[i]);
  const std::size_t n_kept = out.order.size();
  if (n_kept >= 2) {
    std::vector<double> gaps(n_kept - 1);
    for (std::size_t k = 0; k + 1 < n_kept; ++k) gaps[k] = out.positions[k + 1] - out.positions[k];
    std::vector<double> sorted = gaps;
    std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
    double median = sorted[sorted.size() / 2];
    if (sorted.size() % 2 == 0 && sorted.size() >= 2) {
      const double upper = median;
      const double lower = *std::max_element(sorted.begin(), sorted.begin() + sorted.size() / 2);
      median = 0.5 * (lower + upper);
    }
    out.spacing = median;
    out.min_gap = *std::min_element(gaps.begin(), gaps.end());
    out.max_gap = *std::max_element(gaps.begin(), gaps.end());

    // Uneven spacing: gaps differ by more than rounding of the DS strings would explain.
    const double tol = std::max(0.01, 0.01 * median);
    if (out.max_gap - out.min_gap > tol)
      out.warnings.push_back({warn::uneven_spacing, "slice spacing varies from " + fmt(out.min_gap, 3) + " to " +
                                                         fmt(out.max_gap, 3) + " mm (median " + fmt(median, 3) +
                                                         " mm); the volume uses the median"});

    // Missing slices: a gap of about twice the usual step or more.
    std::vector<std::string> holes;
    std::size_t hole_count = 0, missing_total = 0;
    for (std::size_t k = 0; k < gaps.size(); ++k) {
      if (gaps[k] > 1.5 * median) {
        const auto missing = static_cast<std::size_t>(std::lround(gaps[k] / median)) - 1;
        ++hole_count;
        missing_total += std::max<std::size_t>(missing, 1);
        if (holes.size() < 5)
          holes.push_back("between " + describe(slices[out.order[k]]) + " (" + fmt(out.positions[k]) + " mm) and " +
                          describe(slices[out.order[k + 1]]) + " (" + fmt(out.positions[k + 1]) + " mm), gap " +
                          fmt(gaps[k]) + " mm, about " + std::to_string(std::max<std::size_t>(missing, 1)) +
                          " slice(s)");
      }
    }
    if (hole_count > 0) {
      std::string msg = "about " + std::to_string(missing_total) + " slice(s) missing in " +
                        std::to_string(hole_count) + " gap(s): ";
      for (std::size_t k = 0; k < holes.size(); ++k) msg += (k ? "; " : "") + holes[k];
      if (hole_count > holes.size()) msg += "; ...";
      out.warnings.push_back({warn::missing_slices, msg});
    }

    // Gantry tilt: the slices advance along a direction that is not the normal of their planes.
    const auto& first = *slices[out.order.front()].position;
    const auto& last = *slices[out.order.back()].position;
    std::array<double, 3> travel{last[0] - first[0], last[1] - first[1], last[2] - first[2]};
    const double len = norm(travel);
    if (len > 1e-6) {
      const double c = std::min(1.0, std::abs(dot(travel, n)) / len);
      out.tilt_degrees = std::acos(c) * 180.0 / kPi;
      if (out.tilt_degrees > 0.1) {
        std::string msg = "gantry tilt of " + fmt(out.tilt_degrees, 1) + " degrees";
        const auto& declared = slices[out.order.front()].gantry_tilt;
        if (declared) msg += " (GantryDetectorTilt says " + fmt(*declared, 1) + ")";
        out.warnings.push_back({warn::gantry_tilt, msg});
      }
    }

    // Numbering direction. Scanners number from either end (head-first numbering, where InstanceNumber
    // falls as the position rises, is as common as the opposite), so a consistent direction is recorded, not
    // warned about. Numbering that goes both ways (shuffled, restarted) is worth a warning: the files were
    // probably merged or renumbered, and the slices were ordered by position regardless.
    long up = 0, down = 0;
    for (std::size_t k = 0; k + 1 < n_kept; ++k) {
      const auto& a = slices[out.order[k]].instance_number;
      const auto& b = slices[out.order[k + 1]].instance_number;
      if (a && b) {
        if (*b > *a) ++up;
        if (*b < *a) ++down;
      }
    }
    out.reversed_numbering = down > up;
    if (up > 0 && down > 0) {
      out.warnings.push_back({warn::reversed_order,
                              "InstanceNumber does not follow the slice position (" + std::to_string(std::min(up, down)) +
                                  " of " + std::to_string(up + down) + " steps run against the rest); slices were "
                                  "ordered by position"});
    }
  }
  return out;
}

}  // namespace cspine
