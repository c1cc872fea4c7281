// Registers DCMTK's decoders (and encoders) once per process; safe to call from any thread. Also the GDCM
// path for what DCMTK's free edition cannot encode.
#pragma once
#include <string>

namespace cspine::dicom {
void ensure_codecs();
// Re-encodes the uncompressed DICOM file `in` as JPEG 2000 lossless into `out` (GDCM). Throws OutputError.
void encode_jpeg2000_lossless(const std::string& in, const std::string& out);
}  // namespace cspine::dicom
