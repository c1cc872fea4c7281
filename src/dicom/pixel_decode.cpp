#include "dicom/pixel_decode.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcfcache.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <gdcmDataElement.h>
#include <gdcmFragment.h>
#include <gdcmJPEG2000Codec.h>
#include <gdcmPixelFormat.h>
#include <gdcmPhotometricInterpretation.h>
#include <gdcmSequenceOfFragments.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <sstream>

#include "cspine/error.h"
#include "dicom/dicom_header.h"
#include "dicom/frame_check.h"
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
                    bool* stray_bits, bool stored) {
  const int bits_stored = std::clamp(h.bits_stored > 0 ? h.bits_stored : h.bits_allocated, 1, 16);
  const int high_bit = h.high_bit >= bits_stored - 1 ? h.high_bit : bits_stored - 1;
  const int shift = std::max(0, high_bit + 1 - bits_stored);
  const uint32_t mask = (1u << bits_stored) - 1u;
  const bool is_signed = h.pixel_representation == 1;
  const uint32_t sign_bit = 1u << (bits_stored - 1);

  const bool has_pad = h.padding_value.has_value() && !stored;
  int32_t pad_lo = 0, pad_hi = -1;
  if (has_pad) {
    pad_lo = *h.padding_value;
    pad_hi = h.padding_range_limit ? *h.padding_range_limit : pad_lo;
    if (pad_lo > pad_hi) std::swap(pad_lo, pad_hi);
  }
  const double slope = stored ? 1.0 : h.rescale_slope, intercept = stored ? 0.0 : h.rescale_intercept;
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

// The file as it is now must still be the image that was indexed: a slice replaced by another study's (or
// rewritten with another matrix) between indexing and loading is skipped, not scored under the wrong study.
void verify_unchanged(DcmFileFormat& file, const std::string& path, const std::vector<FrameTarget>& targets) {
  const std::vector<SliceHeader> now = slice_headers_of(file, path);
  for (const auto& t : targets) {
    const SliceHeader& was = *t.header;
    if (static_cast<std::size_t>(was.frame) >= now.size())
      throw SeriesError("'" + path + "' changed after it was indexed: it now has " + std::to_string(now.size()) +
                        " frame(s)");
    const SliceHeader& is = now[static_cast<std::size_t>(was.frame)];
    std::string what;
    const auto differ = [&](const char* name, const auto& a, const auto& b, const std::string& shown) {
      if (what.empty() && !(a == b)) what = std::string(name) + shown;
    };
    const auto show = [](const std::string& a, const std::string& b) { return " '" + b + "' (indexed: '" + a + "')"; };
    const auto num = [](long a, long b) { return " " + std::to_string(b) + " (indexed: " + std::to_string(a) + ")"; };
    differ("StudyInstanceUID", was.study_uid, is.study_uid, show(was.study_uid, is.study_uid));
    differ("SeriesInstanceUID", was.series_uid, is.series_uid, show(was.series_uid, is.series_uid));
    differ("SOPInstanceUID", was.sop_instance_uid, is.sop_instance_uid, show(was.sop_instance_uid, is.sop_instance_uid));
    differ("TransferSyntaxUID", was.transfer_syntax_uid, is.transfer_syntax_uid,
           show(was.transfer_syntax_uid, is.transfer_syntax_uid));
    differ("Rows", was.rows, is.rows, num(was.rows, is.rows));
    differ("Columns", was.columns, is.columns, num(was.columns, is.columns));
    differ("BitsAllocated", was.bits_allocated, is.bits_allocated, num(was.bits_allocated, is.bits_allocated));
    differ("BitsStored", was.bits_stored, is.bits_stored, num(was.bits_stored, is.bits_stored));
    differ("HighBit", was.high_bit, is.high_bit, num(was.high_bit, is.high_bit));
    differ("PixelRepresentation", was.pixel_representation, is.pixel_representation,
           num(was.pixel_representation, is.pixel_representation));
    differ("SamplesPerPixel", was.samples_per_pixel, is.samples_per_pixel, num(was.samples_per_pixel, is.samples_per_pixel));
    differ("NumberOfFrames", was.number_of_frames, is.number_of_frames, num(was.number_of_frames, is.number_of_frames));
    differ("ImagePositionPatient", was.position, is.position, "");
    differ("ImageOrientationPatient", was.orientation, is.orientation, "");
    differ("PixelSpacing", was.pixel_spacing, is.pixel_spacing, "");
    differ("RescaleSlope", was.rescale_slope, is.rescale_slope, "");
    differ("RescaleIntercept", was.rescale_intercept, is.rescale_intercept, "");
    differ("PixelPaddingValue", was.padding_value, is.padding_value, "");
    if (!what.empty()) throw SeriesError("'" + path + "' changed after it was indexed: " + what);
    if (!is.defect.empty()) throw SeriesError(is.defect);
  }
}

// One JPEG 2000 frame's fragments decoded with GDCM's codec (OpenJPEG), in memory: GDCM never parses the file itself (its
// parser asserts on truncated encapsulated data), and the frame's own header was checked against Rows/Columns
// first (its JPEG 2000 codec writes what the codestream holds into a buffer sized from the header).
std::vector<char> decode_frame_with_gdcm(DcmPixelSequence* seq, std::pair<unsigned long, unsigned long> items,
                                         const SliceHeader& h, Codestream kind, const std::string& path) {
  gdcm::SmartPointer<gdcm::SequenceOfFragments> fragments = new gdcm::SequenceOfFragments;
  for (unsigned long i = items.first; i < items.second; ++i) {
    DcmPixelItem* item = nullptr;
    Uint8* data = nullptr;
    if (seq->getItem(item, i).bad() || item == nullptr || item->getUint8Array(data).bad() || data == nullptr)
      throw SeriesError("'" + path + "': fragment " + std::to_string(i) + " of the pixel data cannot be read");
    gdcm::Fragment f;
    f.SetByteValue(reinterpret_cast<const char*>(data), gdcm::VL(item->getLength()));
    fragments->AddFragment(f);
  }
  gdcm::DataElement in(gdcm::Tag(0x7fe0, 0x0010));
  in.SetVLToUndefined();
  in.SetValue(*fragments);
  if (kind != Codestream::jpeg2000)
    throw SeriesError("'" + path + "': no decoder for " + transfer_syntax_name(h.transfer_syntax_uid));
  auto codec = std::make_unique<gdcm::JPEG2000Codec>();
  const unsigned dims[3] = {static_cast<unsigned>(h.columns), static_cast<unsigned>(h.rows), 1};
  codec->SetNumberOfDimensions(2);
  codec->SetDimensions(dims);
  codec->SetPixelFormat(gdcm::PixelFormat(static_cast<unsigned short>(h.samples_per_pixel),
                                          static_cast<unsigned short>(h.bits_allocated),
                                          static_cast<unsigned short>(std::clamp(h.bits_stored, 1, h.bits_allocated)),
                                          static_cast<unsigned short>(std::clamp(h.high_bit, 0, h.bits_allocated - 1)),
                                          static_cast<unsigned short>(h.pixel_representation == 1 ? 1 : 0)));
  gdcm::PhotometricInterpretation pi = gdcm::PhotometricInterpretation::GetPIType(h.photometric.c_str());
  if (pi == gdcm::PhotometricInterpretation::UNKNOWN || pi == gdcm::PhotometricInterpretation::PI_END)
    pi = gdcm::PhotometricInterpretation::MONOCHROME2;
  codec->SetPhotometricInterpretation(pi);
  codec->SetPlanarConfiguration(0);
  gdcm::DataElement out;
  if (!codec->Decode(in, out)) throw SeriesError("cannot decode the pixel data of '" + path + "' (GDCM)");
  const gdcm::ByteValue* bv = out.GetByteValue();
  const std::size_t expected = static_cast<std::size_t>(h.rows) * static_cast<std::size_t>(h.columns) *
                               static_cast<std::size_t>(h.bits_allocated / 8);
  if (bv == nullptr || static_cast<std::size_t>(static_cast<uint32_t>(bv->GetLength())) < expected)
    throw SeriesError("'" + path + "': the decoded frame holds " + std::to_string(bv ? static_cast<uint32_t>(bv->GetLength()) : 0u) +
                      " bytes, not the " + std::to_string(expected) + " that Rows x Columns x BitsAllocated need");
  return std::vector<char>(bv->GetPointer(), bv->GetPointer() + expected);
}

// Native (uncompressed) pixel data: the header is parsed with large values left on disk, then each frame
// is read straight from the file into a per-thread buffer that is reused from file to file (DCMTK swaps
// big-endian data on the way). This avoids allocating and faulting in a fresh buffer per file.
void decode_native(const std::string& path, const std::vector<FrameTarget>& targets, int16_t padding_hu,
                   DecodeStats* stats) {
  DcmFileFormat file;
  load_file(file, path, /*headers_only=*/true);
  verify_unchanged(file, path, targets);
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
    if (offset + frame_bytes > have)  // verify_unchanged checked the length already; this guards the read
      throw Error(ExitCode::unusable_series, "'" + path + "': pixel data holds " + std::to_string(have) +
                                                 " bytes, fewer than Rows x Columns x frames needs (truncated file?)");
    OFCondition c = el->getPartialValue(buffer.data(), static_cast<Uint32>(offset), static_cast<Uint32>(frame_bytes),
                                        &cache, gLocalByteOrder);
    if (c.bad()) throw Error(ExitCode::unusable_series, "cannot read the pixel data of '" + path + "': " + c.text());
    const std::size_t n = stored_to_hu(buffer.data(), h0.bits_allocated, frame_values, *t.header, padding_hu, t.dst,
                                       stats ? &stats->stray_bits : nullptr, t.stored);
    if (stats) stats->clamped += n;
  }
}

// Returns false (with `why`) when only the codec failed, so that another decoder may try; throws when
// the file itself is unreadable (truncated, not DICOM), where a second decoder must not paper over it.
bool decode_with_dcmtk(DcmFileFormat& file, const std::string& path, const std::vector<FrameTarget>& targets,
                       int16_t padding_hu, DecodeStats* stats, std::string& why) {
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
  if (have > static_cast<std::size_t>(h0.number_of_frames) * frame_values * bytes + 1)
    throw SeriesError("'" + path + "': decoded pixel data holds " + std::to_string(have) +
                      " bytes, more than Rows x Columns x BitsAllocated x frames: the header does not describe the data");
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
                                       stats ? &stats->stray_bits : nullptr, t.stored);
    if (stats) stats->clamped += c;
  }
  return true;
}

}  // namespace

std::size_t stored_to_hu(const void* raw, int bits_allocated, std::size_t count, const SliceHeader& h,
                         int16_t padding_hu, int16_t* dst, bool* stray_bits, bool stored) {
  if (bits_allocated == 16)
    return convert(static_cast<const uint16_t*>(raw), count, h, padding_hu, dst, stray_bits, stored);
  if (bits_allocated == 8) return convert(static_cast<const uint8_t*>(raw), count, h, padding_hu, dst, stray_bits, stored);
  throw SeriesError("unsupported BitsAllocated " + std::to_string(bits_allocated) + " in '" + h.path + "'");
}

void decode_frames(const std::string& path, const std::vector<FrameTarget>& targets, int16_t padding_hu,
                   DecodeStats* stats) {
  if (targets.empty()) return;
  const SliceHeader& h0 = *targets.front().header;
  check_format(path, h0);
  if (!h0.has_pixel_data) throw SeriesError("'" + path + "' has no pixel data (7FE0,0010)");
  if (!h0.defect.empty()) throw SeriesError(h0.defect);
  const DcmXfer x(h0.transfer_syntax_uid.c_str());
  if (x.getXfer() != EXS_Unknown && x.isNotEncapsulated() && x.getXfer() != EXS_DeflatedLittleEndianExplicit) {
    decode_native(path, targets, padding_hu, stats);
    return;
  }
  DcmFileFormat file;
  load_file(file, path, /*headers_only=*/false);
  verify_unchanged(file, path, targets);
  std::string why;
  if (x.getXfer() == EXS_DeflatedLittleEndianExplicit) {
    if (!decode_with_dcmtk(file, path, targets, padding_hu, stats, why)) throw SeriesError(why);
    return;
  }
  // Encapsulated: the fragments of every wanted frame, and each frame's own image header, are checked against
  // the DICOM header before a codec sees them.
  const Codestream kind = codestream_kind(h0.transfer_syntax_uid);
  DcmElement* el = nullptr;
  DcmPixelSequence* seq = nullptr;
  auto* pd = file.getDataset()->findAndGetElement(DCM_PixelData, el).good() ? dynamic_cast<DcmPixelData*>(el) : nullptr;
  if (pd == nullptr || x.getXfer() == EXS_Unknown || pd->getEncapsulatedRepresentation(x.getXfer(), nullptr, seq).bad() ||
      seq == nullptr)
    throw SeriesError("'" + path + "': encapsulated pixel data cannot be read (transfer syntax " +
                      transfer_syntax_name(h0.transfer_syntax_uid) + ")");
  const auto frames = frame_fragments(seq, h0.number_of_frames, kind, path);
  for (const auto& t : targets) {
    const auto& range = frames.at(static_cast<std::size_t>(t.header->frame));
    DcmPixelItem* item = nullptr;
    Uint8* data = nullptr;
    if (seq->getItem(item, range.first).bad() || item == nullptr || item->getUint8Array(data).bad() || data == nullptr)
      throw SeriesError("'" + path + "': the compressed frame " + std::to_string(t.header->frame) + " cannot be read");
    check_frame_header(data, item->getLength(), item->getLength(), kind, *t.header, path);
  }
  const std::size_t frame_values = static_cast<std::size_t>(h0.rows) * static_cast<std::size_t>(h0.columns);
  const auto with_gdcm = [&] {
    for (const auto& t : targets) {
      const std::vector<char> raw =
          decode_frame_with_gdcm(seq, frames.at(static_cast<std::size_t>(t.header->frame)), *t.header, kind, path);
      const std::size_t c = stored_to_hu(raw.data(), h0.bits_allocated, frame_values, *t.header, padding_hu, t.dst,
                                         stats ? &stats->stray_bits : nullptr, t.stored);
      if (stats) stats->clamped += c;
    }
    if (stats) stats->used_gdcm = true;
  };
  // DCMTK's free edition has no JPEG 2000 decoder: GDCM's (OpenJPEG) does it. Every other syntax is DCMTK's alone,
  // and its refusal is final: GDCM as a second opinion leaked about 750 KB per corrupt JPEG frame (its IJG memory
  // manager, on the error path) and asserted (aborting the process) on a corrupt RLE segment; both found by
  // fuzz_pixel_decode (fuzz/reproducers/fuzz_pixel_decode/).
  if (kind == Codestream::jpeg2000) return with_gdcm();
  if (!decode_with_dcmtk(file, path, targets, padding_hu, stats, why)) throw SeriesError(why);
}

}  // namespace cspine::dicom

namespace cspine {

std::vector<int16_t> decode_slice_hu(const SliceHeader& header, int16_t padding_hu) {
  std::vector<int16_t> out(static_cast<std::size_t>(header.rows) * static_cast<std::size_t>(header.columns));
  dicom::decode_frames(header.path, {{&header, out.data()}}, padding_hu);
  return out;
}

}  // namespace cspine
