#include "dicom/pixel_decode.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcfcache.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <gdcmImage.h>
#include <gdcmImageReader.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "cspine/error.h"
#include "dicom/dicom_header.h"
#include "util/log.h"

namespace cspine::dicom {

bool is_jpeg2000(const std::string& uid) {
  return uid == "1.2.840.10008.1.2.4.90" || uid == "1.2.840.10008.1.2.4.91" || uid == "1.2.840.10008.1.2.4.92" ||
         uid == "1.2.840.10008.1.2.4.93" || uid == "1.2.840.10008.1.2.4.201" || uid == "1.2.840.10008.1.2.4.202" ||
         uid == "1.2.840.10008.1.2.4.203";
}

namespace {

// The per-pixel loop is written without branches (selects instead of `if`/`continue`) so the compiler
// vectorises it: this conversion is the hottest loop of an uncompressed load.
template <bool kSigned, bool kIntegerRescale, bool kMayClamp, typename T>
std::size_t convert_loop(const T* raw, std::size_t count, int shift, uint32_t mask, uint32_t sign_bit, bool has_pad,
                         int32_t pad_lo, int32_t pad_hi, int32_t int_intercept, double slope, double intercept,
                         int16_t padding_hu, int16_t* dst, uint32_t& seen_bits) {
  constexpr int32_t lo = std::numeric_limits<int16_t>::min(), hi = std::numeric_limits<int16_t>::max();
  std::size_t clamped = 0;
  uint32_t seen = 0;
  for (std::size_t i = 0; i < count; ++i) {
    seen |= raw[i];
    const uint32_t u = (static_cast<uint32_t>(raw[i]) >> shift) & mask;
    // Branch-free sign extension from BitsStored bits.
    const int32_t v = kSigned ? static_cast<int32_t>(u ^ sign_bit) - static_cast<int32_t>(sign_bit)
                              : static_cast<int32_t>(u);
    int32_t out;
    if constexpr (kIntegerRescale) {
      out = v + int_intercept;
    } else {
      out = static_cast<int32_t>(std::floor(v * slope + intercept + 0.5));
    }
    if constexpr (kMayClamp) {
      clamped += static_cast<std::size_t>((out < lo) | (out > hi));
      out = out < lo ? lo : (out > hi ? hi : out);
    }
    const bool pad = has_pad & (v >= pad_lo) & (v <= pad_hi);
    dst[i] = pad ? padding_hu : static_cast<int16_t>(out);
  }
  seen_bits |= seen;
  return clamped;
}

template <typename T>
std::size_t convert(const T* raw, std::size_t count, const SliceHeader& h, int16_t padding_hu, int16_t* dst,
                    bool* stray_bits) {
  const int bits_stored = std::clamp(h.bits_stored > 0 ? h.bits_stored : h.bits_allocated, 1, 16);
  const int high_bit = h.high_bit >= bits_stored - 1 ? h.high_bit : bits_stored - 1;
  const int shift = std::max(0, high_bit + 1 - bits_stored);
  const uint32_t mask = (1u << bits_stored) - 1u;
  const bool is_signed = h.pixel_representation == 1;
  const uint32_t sign_bit = 1u << (bits_stored - 1);

  const bool has_pad = h.padding_value.has_value();
  int32_t pad_lo = 0, pad_hi = -1;
  if (has_pad) {
    pad_lo = *h.padding_value;
    pad_hi = h.padding_range_limit ? *h.padding_range_limit : pad_lo;
    if (pad_lo > pad_hi) std::swap(pad_lo, pad_hi);
  }
  const double slope = h.rescale_slope, intercept = h.rescale_intercept;
  const bool integer_path = slope == 1.0 && intercept == std::round(intercept) && std::abs(intercept) < 65536.0;
  const auto ii = static_cast<int32_t>(integer_path ? intercept : 0.0);
  // With an integer intercept the output range is known up front; when it fits int16 (the usual CT case,
  // e.g. 12 or 16 unsigned bits with intercept -1024) the clamping work is dropped from the loop.
  const int64_t vmin = is_signed ? -static_cast<int64_t>(sign_bit) : 0;
  const int64_t vmax = is_signed ? static_cast<int64_t>(sign_bit) - 1 : static_cast<int64_t>(mask);
  const bool may_clamp = !integer_path || vmin + ii < std::numeric_limits<int16_t>::min() ||
                         vmax + ii > std::numeric_limits<int16_t>::max();
#define CSPINE_CONVERT(S, I, C)                                                                                    \
  convert_loop<S, I, C>(raw, count, shift, mask, sign_bit, has_pad, pad_lo, pad_hi, ii, slope, intercept, padding_hu, \
                        dst, seen)
  uint32_t seen = 0;
  std::size_t clamped;
  if (is_signed) {
    if (!integer_path) clamped = CSPINE_CONVERT(true, false, true);
    else clamped = may_clamp ? CSPINE_CONVERT(true, true, true) : CSPINE_CONVERT(true, true, false);
  } else {
    if (!integer_path) clamped = CSPINE_CONVERT(false, false, true);
    else clamped = may_clamp ? CSPINE_CONVERT(false, true, true) : CSPINE_CONVERT(false, true, false);
  }
#undef CSPINE_CONVERT
  // Bits outside BitsStored were ignored, as the standard says; note when any were set, because a wrong
  // BitsStored (values really using 16 bits) then wraps bright structures to dark ones. Signed data is not
  // checked: writers legitimately sign-extend it into the unused high bits.
  const uint32_t type_mask = (sizeof(T) == 1) ? 0xffu : 0xffffu;
  if (stray_bits && !is_signed && (seen & type_mask & ~(mask << shift)) != 0) *stray_bits = true;
  return clamped;
}

void check_format(const std::string& path, const SliceHeader& h) {
  if (h.samples_per_pixel != 1)
    throw SeriesError("'" + path + "' has " + std::to_string(h.samples_per_pixel) +
                      " samples per pixel (colour image); CT volumes need one (monochrome)");
  if (h.bits_allocated != 8 && h.bits_allocated != 16)
    throw SeriesError("'" + path + "' has BitsAllocated " + std::to_string(h.bits_allocated) +
                      "; only 8 and 16 are supported");
  if (h.rows <= 0 || h.columns <= 0) throw SeriesError("'" + path + "' has no Rows/Columns");
}

void decode_with_gdcm(const std::string& path, const std::vector<FrameTarget>& targets, int16_t padding_hu,
                      DecodeStats* stats) {
  gdcm::ImageReader reader;
  reader.SetFileName(path.c_str());
  if (!reader.Read()) throw Error(ExitCode::unusable_series, "cannot decode '" + path + "' with GDCM");
  const gdcm::Image& image = reader.GetImage();
  const gdcm::PixelFormat& pf = image.GetPixelFormat();
  const unsigned bits = pf.GetBitsAllocated();
  const SliceHeader& h0 = *targets.front().header;
  if (image.GetDimension(0) != static_cast<unsigned>(h0.columns) || image.GetDimension(1) != static_cast<unsigned>(h0.rows))
    throw Error(ExitCode::unusable_series, "'" + path + "': decoded image size differs from Rows/Columns");
  std::vector<char> buffer(image.GetBufferLength());
  if (!image.GetBuffer(buffer.data()))
    throw Error(ExitCode::unusable_series, "cannot decode the pixel data of '" + path + "' (GDCM)");
  const std::size_t frame_values = static_cast<std::size_t>(h0.rows) * h0.columns;
  const std::size_t bytes = bits / 8;
  for (const auto& t : targets) {
    const std::size_t offset = static_cast<std::size_t>(t.header->frame) * frame_values * bytes;
    if (offset + frame_values * bytes > buffer.size())
      throw Error(ExitCode::unusable_series, "'" + path + "': pixel data is shorter than Rows x Columns x frames");
    const std::size_t c = stored_to_hu(buffer.data() + offset, static_cast<int>(bits), frame_values, *t.header,
                                       padding_hu, t.dst, stats ? &stats->stray_bits : nullptr);
    if (stats) stats->clamped += c;
  }
  if (stats) stats->used_gdcm = true;
}

// Native (uncompressed) pixel data: the header is parsed with large values left on disk, then each frame
// is read straight from the file into a per-thread buffer that is reused from file to file (DCMTK swaps
// big-endian data on the way). This avoids allocating and faulting in a fresh buffer per file.
void decode_native(const std::string& path, const std::vector<FrameTarget>& targets, int16_t padding_hu,
                   DecodeStats* stats) {
  DcmFileFormat file;
  load_file(file, path, /*headers_only=*/true);
  DcmElement* el = nullptr;
  if (file.getDataset()->findAndGetElement(DCM_PixelData, el).bad() || el == nullptr)
    throw SeriesError("'" + path + "' has no pixel data (7FE0,0010)");
  const SliceHeader& h0 = *targets.front().header;
  const std::size_t frame_values = static_cast<std::size_t>(h0.rows) * h0.columns;
  const std::size_t bytes = h0.bits_allocated / 8;
  const std::size_t frame_bytes = frame_values * bytes;
  thread_local std::vector<uint8_t> buffer;
  if (buffer.size() < frame_bytes) buffer.resize(frame_bytes);
  DcmFileCache cache;
  const Uint32 have = el->getLength();
  for (const auto& t : targets) {
    const std::size_t offset = static_cast<std::size_t>(t.header->frame) * frame_bytes;
    if (offset + frame_bytes > have)
      throw Error(ExitCode::unusable_series, "'" + path + "': pixel data holds " + std::to_string(have) +
                                                 " bytes, fewer than Rows x Columns x frames needs (truncated file?)");
    OFCondition c = el->getPartialValue(buffer.data(), static_cast<Uint32>(offset), static_cast<Uint32>(frame_bytes),
                                        &cache, gLocalByteOrder);
    if (c.bad()) throw Error(ExitCode::unusable_series, "cannot read the pixel data of '" + path + "': " + c.text());
    const std::size_t n = stored_to_hu(buffer.data(), h0.bits_allocated, frame_values, *t.header, padding_hu, t.dst,
                                       stats ? &stats->stray_bits : nullptr);
    if (stats) stats->clamped += n;
  }
}

// Returns false (with `why`) when only the codec failed, so that another decoder may try; throws when
// the file itself is unreadable (truncated, not DICOM), where a second decoder must not paper over it.
bool decode_with_dcmtk(const std::string& path, const std::vector<FrameTarget>& targets, int16_t padding_hu,
                       DecodeStats* stats, std::string& why) {
  DcmFileFormat file;
  load_file(file, path, /*headers_only=*/false);
  DcmDataset* ds = file.getDataset();
  OFCondition cond = ds->chooseRepresentation(EXS_LittleEndianExplicit, nullptr);
  if (cond.bad() || !ds->canWriteXfer(EXS_LittleEndianExplicit)) {
    why = "cannot decode the pixel data of '" + path + "': " +
          (cond.bad() ? std::string(cond.text())
                      : "no decoder for " + transfer_syntax_name(targets.front().header->transfer_syntax_uid));
    return false;
  }
  DcmElement* el = nullptr;
  if (ds->findAndGetElement(DCM_PixelData, el).bad() || el == nullptr)
    throw SeriesError("'" + path + "' has no pixel data (7FE0,0010)");
  const SliceHeader& h0 = *targets.front().header;
  const std::size_t frame_values = static_cast<std::size_t>(h0.rows) * h0.columns;
  const std::size_t bytes = h0.bits_allocated / 8;
  const std::size_t have = el->getLength();
  const void* base = nullptr;
  if (h0.bits_allocated == 16) {
    Uint16* p = nullptr;
    if (el->getUint16Array(p).bad() || p == nullptr)
      throw Error(ExitCode::unusable_series, "cannot read the pixel data of '" + path + "'");
    base = p;
  } else {
    Uint8* p = nullptr;
    if (el->getUint8Array(p).bad() || p == nullptr)
      throw Error(ExitCode::unusable_series, "cannot read the pixel data of '" + path + "'");
    base = p;
  }
  for (const auto& t : targets) {
    const std::size_t offset = static_cast<std::size_t>(t.header->frame) * frame_values * bytes;
    if (offset + frame_values * bytes > have)
      throw Error(ExitCode::unusable_series, "'" + path + "': pixel data holds " + std::to_string(have) +
                                                 " bytes, fewer than Rows x Columns x frames needs (truncated file?)");
    const std::size_t c = stored_to_hu(static_cast<const char*>(base) + offset, h0.bits_allocated, frame_values,
                                       *t.header, padding_hu, t.dst,
                                       stats ? &stats->stray_bits : nullptr);
    if (stats) stats->clamped += c;
  }
  return true;
}

}  // namespace

std::size_t stored_to_hu(const void* raw, int bits_allocated, std::size_t count, const SliceHeader& h,
                         int16_t padding_hu, int16_t* dst, bool* stray_bits) {
  if (bits_allocated == 16) return convert(static_cast<const uint16_t*>(raw), count, h, padding_hu, dst, stray_bits);
  if (bits_allocated == 8) return convert(static_cast<const uint8_t*>(raw), count, h, padding_hu, dst, stray_bits);
  throw SeriesError("unsupported BitsAllocated " + std::to_string(bits_allocated) + " in '" + h.path + "'");
}

void decode_frames(const std::string& path, const std::vector<FrameTarget>& targets, int16_t padding_hu,
                   DecodeStats* stats) {
  if (targets.empty()) return;
  const SliceHeader& h0 = *targets.front().header;
  check_format(path, h0);
  if (!h0.has_pixel_data) throw SeriesError("'" + path + "' has no pixel data (7FE0,0010)");
  if (is_jpeg2000(h0.transfer_syntax_uid)) {
    decode_with_gdcm(path, targets, padding_hu, stats);
    return;
  }
  {
    DcmXfer x(h0.transfer_syntax_uid.c_str());
    if (x.getXfer() != EXS_Unknown && x.isNotEncapsulated() && x.getXfer() != EXS_DeflatedLittleEndianExplicit) {
      decode_native(path, targets, padding_hu, stats);
      return;
    }
  }
  std::string why;
  if (decode_with_dcmtk(path, targets, padding_hu, stats, why)) return;
  // A second opinion before giving up: GDCM tolerates some encoder bugs that DCMTK refuses.
  CSPINE_DEBUG("{}; trying GDCM", why);
  try {
    decode_with_gdcm(path, targets, padding_hu, stats);
  } catch (const Error& e) {
    throw Error(ExitCode::unusable_series, why + " (GDCM: " + e.what() + ")");
  }
}

}  // namespace cspine::dicom

namespace cspine {

std::vector<int16_t> decode_slice_hu(const SliceHeader& header, int16_t padding_hu) {
  std::vector<int16_t> out(static_cast<std::size_t>(header.rows) * static_cast<std::size_t>(header.columns));
  dicom::decode_frames(header.path, {{&header, out.data()}}, padding_hu);
  return out;
}

}  // namespace cspine
