// Shared test helpers: temporary folders, synthetic CT slices and series written with DCMTK, and paths to
// the real scanner samples in ../shared/dicom-samples.
#pragma once
#include <gtest/gtest.h>

#include <array>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cspine/dicom.h"
#include "cspine/dicom_writer.h"
#include "cspine/volume.h"

class DcmDataset;

namespace cspine::test {

namespace fs = std::filesystem;

// A fresh folder under the system temp dir, removed when the object goes away.
class TempDir {
public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

private:
  fs::path path_;
};

// The real samples folder; the test is skipped with a message naming it when absent.
std::string samples_dir();
#define CSPINE_REQUIRE_SAMPLES()                                                        \
  do {                                                                                  \
    if (!std::filesystem::is_directory(::cspine::test::samples_dir()))                  \
      GTEST_SKIP() << "samples not found at " << ::cspine::test::samples_dir();        \
  } while (0)

// Deterministic phantom slice: air outside an elliptic body, soft tissue, a bony ring, some texture.
std::vector<int16_t> phantom_slice(int rows, int columns, int k, unsigned seed = 1);

struct SeriesSpec {
  int rows = 32, columns = 32, slices = 8;
  double spacing_z = 1.25;
  std::array<double, 2> pixel_spacing{0.7, 0.6};
  std::array<double, 3> origin{-10.0, -12.0, 30.0};
  std::array<double, 6> orientation{1, 0, 0, 0, 1, 0};
  bool head_first_numbering = false;     // instance 1 at the highest position
  std::string study_uid, series_uid;     // generated when empty
  int series_number = 2;
  TransferSyntax ts = TransferSyntax::explicit_little;
  bool is_signed = false;
  int bits_stored = 16;
  double slope = 1.0, intercept = -1024.0;
  std::vector<std::string> image_type{"ORIGINAL", "PRIMARY", "AXIAL"};
  unsigned seed = 1;
};

struct WrittenSeries {
  std::string study_uid, series_uid;
  std::vector<std::string> files;           // in position order, lowest first
  std::vector<std::vector<int16_t>> hu;     // expected HU per slice, same order
  std::vector<double> z;                    // position along the normal
};

// Writes the series into `dir`, naming files with `name(k)` (k = position order index).
WrittenSeries write_series(const std::string& dir, const SeriesSpec& spec,
                           const std::function<std::string(int)>& name = nullptr);

// Rewrites one DICOM file with `edit` applied to its data set, keeping its transfer syntax (encapsulated pixel
// data is written back as it was read): how the hostile-input tests damage a file.
void edit_dicom_file(const std::string& path, const std::function<void(DcmDataset&)>& edit);

// A small series (32 x 32, `slices` slices) in transfer syntax `ts`.
SeriesSpec small_series(int slices, TransferSyntax ts = TransferSyntax::explicit_little);

// Runs a shell command, returns its exit status and captures stdout (stderr goes to `err` when given).
int run_command(const std::string& command, std::string* out = nullptr, std::string* err = nullptr);

// Runs argv[0] with arguments (no shell) and returns its peak resident memory in KiB, or -1 on failure
// to start; `exit_code` receives its exit status.
long run_peak_rss_kb(const std::vector<std::string>& argv, int* exit_code = nullptr);

// Shell-quotes a path for run_command.
inline std::string q(const std::string& s) { return "'" + s + "'"; }

// Values of `ours` compared with `ref` in patient space: for each voxel of ours, the voxel of ref at the
// same physical point (within 0.01 voxel). Mismatches ignore ref voxels equal to `skip_ref`.
struct Agreement {
  std::size_t compared = 0, mismatched = 0, outside = 0;
};
Agreement agree(const Volume& ours, const Volume& ref, std::optional<int16_t> skip_ref = std::nullopt);

// Fractional voxel index of an LPS point in `v` (direction orthonormal).
std::array<double, 3> lps_to_index(const Volume& v, const std::array<double, 3>& p);

// Runs dcm2niix -z n on `in` into `out_dir` and returns the NIfTI it wrote (a test failure if none).
std::string dcm2niix(const std::string& in, const std::string& out_dir);
bool have_dcm2niix();

}  // namespace cspine::test
