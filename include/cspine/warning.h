// Anomalies found while reading DICOM, with stable machine-readable codes (documented in docs of the loader).
#pragma once
#include <string>
#include <vector>

namespace cspine {

// Stable warning codes. Scripts may match on them; never rename one.
namespace warn {
inline constexpr const char* gantry_tilt = "gantry-tilt";
inline constexpr const char* uneven_spacing = "uneven-spacing";
inline constexpr const char* missing_slices = "missing-slices";
inline constexpr const char* duplicate_position = "duplicate-position";
inline constexpr const char* reversed_order = "reversed-order";
inline constexpr const char* skipped_file = "skipped-file";
inline constexpr const char* mixed_series = "mixed-series";
inline constexpr const char* missing_uid = "missing-uid";
inline constexpr const char* unsupported_series = "unsupported-series";
inline constexpr const char* lossy_compression = "lossy-compression";
inline constexpr const char* value_clamped = "value-clamped";
inline constexpr const char* high_bits_set = "high-bits-set";
inline constexpr const char* dicom_out_skipped = "dicom-out-skipped";  // predict --dicom-out wrote nothing for the study
}  // namespace warn

struct Warning {
  std::string code;
  std::string message;
};

using Warnings = std::vector<Warning>;

}  // namespace cspine
