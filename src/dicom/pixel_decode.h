// Internal: decoding stored pixel values of one file into int16 HU, with DCMTK (all codecs it has) and
// GDCM for JPEG 2000, which DCMTK's free edition cannot decode.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cspine/dicom.h"

namespace cspine::dicom {

struct FrameTarget {
  const SliceHeader* header;  // header of the frame (its file is the one being decoded)
  int16_t* dst;               // rows*columns values
  // Keep the stored values (BitsStored, sign) without rescale or padding substitution, clamped to int16: what
  // a model trained on the files' own values (contract intensity "slice_minmax") reads.
  bool stored = false;
};

struct DecodeStats {
  std::size_t clamped = 0;  // values outside int16 after rescale
  bool used_gdcm = false;
  bool stray_bits = false;  // some stored value had bits set outside BitsStored/HighBit
};

// Decodes the given frames of `path` (all targets must come from that file). Throws cspine::Error with
// the file name and reason when the file cannot be decoded.
void decode_frames(const std::string& path, const std::vector<FrameTarget>& targets, int16_t padding_hu,
                   DecodeStats* stats = nullptr);

// Stored values (8 or 16 bits allocated, host byte order) to HU: BitsStored/HighBit, sign, padding,
// RescaleSlope/Intercept, clamping to int16. Returns how many values were clamped; sets *stray_bits when a
// value had bits set outside BitsStored (they are ignored).
// With `stored`, values are kept as stored (no rescale, no padding), clamped to int16.
std::size_t stored_to_hu(const void* raw, int bits_allocated, std::size_t count, const SliceHeader& h,
                         int16_t padding_hu, int16_t* dst, bool* stray_bits = nullptr, bool stored = false);

bool is_jpeg2000(const std::string& transfer_syntax_uid);

}  // namespace cspine::dicom
