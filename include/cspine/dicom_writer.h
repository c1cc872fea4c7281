// Writing CT slices as DICOM with DCMTK: used by the test fixtures and benchmarks now, and by the
// synthetic study generator later. Writes full CT headers and any transfer syntax DCMTK can encode.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cspine {

enum class TransferSyntax {
  explicit_little,
  implicit_little,
  explicit_big,
  deflated,
  jpeg_lossless_sv1,  // JPEG lossless, process 14, selection value 1 (what the RSNA 2022 data uses)
  jpeg_ls_lossless,
  rle,
  jpeg2000_lossless,  // encoded with GDCM (OpenJPEG); DCMTK's free edition has no JPEG 2000 encoder
};

// Parses "explicit", "implicit", "big-endian", "deflated", "jpeg-lossless", "jpeg-ls", "rle", "j2k".
std::optional<TransferSyntax> parse_transfer_syntax(const std::string& name);
std::string transfer_syntax_uid(TransferSyntax ts);

struct CtSliceSpec {
  std::string patient_id = "ANON", patient_name = "Anonymous";
  std::string study_uid, series_uid, sop_instance_uid;  // sop_instance_uid generated when empty
  std::string study_date = "20260101", series_description = "synthetic CT";
  int series_number = 1;
  std::optional<int> instance_number;
  int rows = 0, columns = 0;
  std::array<double, 3> position{0, 0, 0};
  std::array<double, 6> orientation{1, 0, 0, 0, 1, 0};
  std::array<double, 2> pixel_spacing{0.5, 0.5};  // between rows, between columns
  double slice_thickness = 1.0;
  double rescale_slope = 1.0, rescale_intercept = -1024.0;
  int bits_stored = 16;
  bool is_signed = false;
  std::optional<int32_t> padding_value;  // written as PixelPaddingValue (stored value)
  std::vector<std::string> image_type{"ORIGINAL", "PRIMARY", "AXIAL"};
  std::string modality = "CT";
  std::string sop_class_uid = "1.2.840.10008.5.1.4.1.1.2";  // CT Image Storage
  double window_center = 400, window_width = 1800;
  bool write_pixel_data = true;
  std::optional<double> slice_location;
  // Further attributes by DICOM keyword, e.g. {"PatientPosition", "HFS"}; an unknown keyword is an error.
  std::vector<std::pair<std::string, std::string>> extra;
};

// A new globally unique DICOM UID (DCMTK's generator with its root).
std::string make_uid();

// Writes one slice: `hu` holds rows*columns Hounsfield values, columns fastest. Stored values are
// (hu - intercept) / slope, clamped to what BitsStored and the sign allow. Throws OutputError.
void write_ct_slice(const std::string& path, const CtSliceSpec& spec, const std::vector<int16_t>& hu,
                    TransferSyntax ts = TransferSyntax::explicit_little);

}  // namespace cspine
