// Reading CT studies from DICOM folders: indexing headers, choosing a series, decoding it into a Volume.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cspine/volume.h"
#include "cspine/warning.h"

namespace cspine {

// What one image (one file, or one frame of a multi-frame file) says about itself. Headers only.
struct SliceHeader {
  std::string path;
  int frame = 0;  // frame index in a multi-frame file, 0 otherwise
  int number_of_frames = 1;
  std::string study_uid, series_uid, sop_instance_uid, sop_class_uid;
  std::string modality, transfer_syntax_uid, photometric, series_description;
  std::vector<std::string> image_type;
  std::optional<int> instance_number, series_number;
  int rows = 0, columns = 0;
  int bits_allocated = 0, bits_stored = 0, high_bit = -1, pixel_representation = 0, samples_per_pixel = 1;
  bool has_pixel_data = false;
  std::optional<std::array<double, 3>> position;     // ImagePositionPatient
  std::optional<std::array<double, 6>> orientation;  // ImageOrientationPatient (row cosine, column cosine)
  std::optional<std::array<double, 2>> pixel_spacing;  // PixelSpacing: between rows, between columns (mm)
  std::optional<double> slice_thickness, gantry_tilt;
  double rescale_slope = 1.0, rescale_intercept = 0.0;
  std::optional<int32_t> padding_value, padding_range_limit;
  std::string specific_character_set;  // as read; text fields above are converted to UTF-8
  // Why this image cannot be used although its header could be read (pixel data shorter or longer than the
  // header claims, a compressed frame that disagrees with Rows/Columns, an impossible matrix or spacing);
  // empty when none was found. Such images are left out of their series with a `skipped-file` warning.
  std::string defect;

  bool is_localizer() const;
  bool is_secondary_capture() const;
};

// Reads the header of every image in one DICOM file (one entry per frame). Throws cspine::Error naming
// the file when it is not DICOM or cannot be parsed.
std::vector<SliceHeader> read_slice_headers(const std::string& path);

struct SeriesInfo {
  std::string study_uid, series_uid;  // series_uid may be synthesised when the files have none
  std::optional<int> series_number;
  std::string description, modality;
  std::vector<SliceHeader> slices;    // in discovery order; loading sorts them
  std::vector<std::string> transfer_syntaxes;  // distinct transfer syntax UIDs seen
  bool selected = false;
  std::string eligibility;  // empty when the series can be scored, else why not ("localizer", ...)
  Warnings warnings;        // found while indexing (mixed series, missing UIDs)
};

struct StudyInfo {
  std::string study_uid;
  std::vector<SeriesInfo> series;
  int selected_series = -1;       // index into `series`, -1 when none qualifies
  std::string selection_reason;   // why that series, or why none
};

struct StudyIndex {
  std::string root;
  std::vector<StudyInfo> studies;  // sorted by StudyInstanceUID
  std::size_t files_seen = 0, dicom_files = 0, skipped_files = 0;
  Warnings warnings;  // skipped files (unreadable DICOM); non-DICOM files are only logged at debug level
};

struct ScanOptions {
  int threads = 0;  // 0: all cores
};

// Walks `path` (a file, a study folder, a folder of study folders, or any tree), reads headers only,
// groups images by study and series and chooses one series per study. Throws InputError when `path`
// does not exist and NoDicomError when nothing under it is DICOM.
StudyIndex scan_studies(const std::string& path, const ScanOptions& options = {});
// The files scan_studies would look at under `path` (a file, or every regular file of a tree, sorted).
std::vector<std::string> list_input_files(const std::string& path);
// scan_studies over the given files only (`path` names them in messages): what a shard of a cluster job runs
// on its own studies' files, from a plan, instead of walking the whole input (src/pipeline/shard.h).
StudyIndex scan_files(const std::string& path, const std::vector<std::string>& files, const ScanOptions& options = {});

// Result of putting a series' slices in spatial order.
struct SliceOrder {
  std::vector<std::size_t> order;     // indices of the kept slices, sorted along the normal
  std::vector<double> positions;      // their offsets along the normal (mm), increasing
  std::array<double, 3> normal{0, 0, 1};
  double spacing = 0.0;               // median gap between kept slices (mm)
  double min_gap = 0.0, max_gap = 0.0;
  double tilt_degrees = 0.0;          // angle between the normal and the direction the slices advance
  bool reversed_numbering = false;    // InstanceNumber decreases as position increases
  Warnings warnings;
};

// Orders slices by ImagePositionPatient projected on the normal (cross product of the orientation
// cosines), drops duplicate positions, and reports tilt, uneven spacing and gaps. Never uses file
// names; InstanceNumber is only compared to report reversed numbering. All slices must carry position
// and orientation (the loader checks that first).
SliceOrder order_slices(const std::vector<SliceHeader>& slices);

// Largest Rows or Columns accepted (CT is 512, rarely 1024; 8192 bounds one slice to 128 MB).
inline constexpr int kMaxMatrix = 8192;
// Largest volume accepted (voxels), checked before the volume is allocated: 2^31 voxels are 4 GiB of int16.
inline constexpr std::size_t kMaxVolumeVoxels = std::size_t{1} << 31;

struct LoadOptions {
  int threads = 0;                 // 0: all cores
  int16_t padding_hu = -1024;      // HU written where PixelPaddingValue marks a pixel as padding (air)
  // On a tilted gantry, shift each slice in its plane so the volume's affine is exact (as dcm2niix does);
  // the pixels that come in from outside the field of view get padding_hu.
  bool correct_tilt = true;
  // Keep each file's stored values (no rescale to HU, PixelPaddingValue pixels kept, no tilt correction), for
  // models whose contract normalises the stored values of each slice (intensity "slice_minmax"). Values outside
  // int16 are clamped (with a value-clamped warning).
  bool stored_values = false;
};

// One source image of a loaded series, in volume order: what a DICOM writer references.
struct SourceInstance {
  std::string sop_instance_uid, sop_class_uid;
  int frame = 0;  // frame of a multi-frame file, 0 otherwise
};

struct LoadedSeries {
  Volume volume;
  SliceOrder geometry;
  std::vector<std::string> slice_files;  // file of each slice of the volume, in volume order
  // InstanceNumber of each slice (the Kaggle box file's slice_number), or its 1-based index when absent.
  std::vector<int> slice_numbers;
  std::vector<SourceInstance> slice_sources;  // the image of each slice, in volume order
  Warnings warnings;                     // geometry warnings plus skipped slices
};

// Decodes the series into an int16 HU volume, slices in parallel. A slice that fails to decode is skipped
// with a `skipped-file` warning; a series that cannot make a volume throws SeriesError naming the file.
LoadedSeries load_series(const SeriesInfo& series, const LoadOptions& options = {});

// Loads one study of an index: the one named by `study_uid`, or the only one when `study_uid` is empty
// (UsageError listing the studies otherwise). Loads the selected series, or the one named by `series_uid`
// (which must still be loadable). Warnings found while indexing the series come first in the result.
LoadedSeries load_study(const StudyIndex& index, const std::string& study_uid, const LoadOptions& options = {},
                        const std::string& series_uid = "");

// Decodes one image to HU (row-major, columns fastest). Throws cspine::Error naming the file on failure.
std::vector<int16_t> decode_slice_hu(const SliceHeader& header, int16_t padding_hu = -1024);

// Name of a transfer syntax UID ("JPEG Lossless SV1", ...), or the UID itself when unknown.
std::string transfer_syntax_name(const std::string& uid);
// True for transfer syntaxes whose compression loses information.
bool transfer_syntax_is_lossy(const std::string& uid);

}  // namespace cspine
