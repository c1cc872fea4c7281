#include "dicom/dicom_header.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcfcache.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcspchrs.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>

#include "cspine/dicom.h"
#include "dicom/codecs.h"
#include "dicom/frame_check.h"
#include "util/text.h"

namespace cspine::dicom {

bool looks_like_dicom(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  unsigned char buf[132] = {0};
  in.read(reinterpret_cast<char*>(buf), sizeof buf);
  const auto got = in.gcount();
  if (got >= 132 && std::memcmp(buf + 128, "DICM", 4) == 0) return true;
  if (got < 8) return false;
  // No preamble: accept a little-endian data set that starts with group 0x0002 or 0x0008 and an
  // element number that exists in those groups (cheap and strict enough to reject text and images).
  const unsigned group = buf[0] | (buf[1] << 8);
  const unsigned element = buf[2] | (buf[3] << 8);
  return (group == 0x0002 || group == 0x0008) && element < 0x2000;
}

void load_file(DcmFileFormat& file, const std::string& path, bool headers_only) {
  ensure_codecs();
  if (!looks_like_dicom(path)) throw NotDicom("not a DICOM file: " + path);
  // With a small maxReadLength DCMTK leaves large values (pixel data) on disk until they are accessed.
  const Uint32 max_read = headers_only ? 256 : DCM_MaxReadLength;
  OFCondition cond = file.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, max_read, ERM_autoDetect);
  if (cond.bad()) {
    // DCMTK's wording for a short file is "I/O suspension or premature end of stream"; say it plainly.
    const std::string why = cond == EC_StreamNotifyClient ? "the file ends early (truncated or still being copied)"
                                                           : std::string(cond.text());
    throw Error(ExitCode::unusable_series, "cannot read DICOM file '" + path + "': " + why);
  }
}

namespace {

std::string get_string(DcmItem* item, const DcmTagKey& tag) {
  OFString v;
  if (item && item->findAndGetOFStringArray(tag, v).good()) {
    std::string s(v.c_str());
    while (!s.empty() && (std::isspace(static_cast<unsigned char>(s.back())) || s.back() == '\0')) s.pop_back();
    size_t start = 0;
    while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
    return s.substr(start);
  }
  return {};
}

std::optional<long> get_int(DcmItem* item, const DcmTagKey& tag) {
  if (!item) return std::nullopt;
  long v = 0;
  if (item->findAndGetLongInt(tag, v).good()) return v;
  Sint32 s = 0;
  if (item->findAndGetSint32(tag, s).good()) return s;  // IS values
  OFString str;
  if (item->findAndGetOFString(tag, str).good() && !str.empty()) {
    try {
      return std::stol(str.c_str());
    } catch (...) {
    }
  }
  return std::nullopt;
}

template <std::size_t N>
std::optional<std::array<double, N>> get_doubles(DcmItem* item, const DcmTagKey& tag) {
  if (!item) return std::nullopt;
  std::array<double, N> out{};
  for (std::size_t i = 0; i < N; ++i) {
    Float64 v = 0;
    if (item->findAndGetFloat64(tag, v, static_cast<unsigned long>(i)).bad() || !std::isfinite(v)) return std::nullopt;
    out[i] = v;
  }
  return out;
}

std::optional<double> get_double(DcmItem* item, const DcmTagKey& tag) {
  auto v = get_doubles<1>(item, tag);
  if (!v) return std::nullopt;
  return (*v)[0];
}

// Padding values are US or SS depending on PixelRepresentation.
std::optional<int32_t> get_padding(DcmItem* item, const DcmTagKey& tag, bool is_signed) {
  if (!item) return std::nullopt;
  DcmElement* el = nullptr;
  if (item->findAndGetElement(tag, el).bad() || el == nullptr || el->getLength() == 0) return std::nullopt;
  if (el->getVR() == EVR_SS || (is_signed && el->getVR() != EVR_US)) {
    Sint16 v = 0;
    if (el->getSint16(v).good()) return v;
    Uint16 u = 0;
    if (el->getUint16(u).good()) return static_cast<Sint16>(u);
  } else {
    Uint16 u = 0;
    if (el->getUint16(u).good()) return is_signed ? static_cast<int32_t>(static_cast<Sint16>(u)) : u;
    Sint16 v = 0;
    if (el->getSint16(v).good()) return v;
  }
  return std::nullopt;
}

std::vector<std::string> split_backslash(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == '\\') {
      out.push_back(cur);
      cur.clear();
    } else if (!std::isspace(static_cast<unsigned char>(c))) {
      cur += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
  }
  out.push_back(cur);
  return out;
}

// Functional group macro lookup for enhanced multi-frame images: the per-frame item wins over the
// shared one; both are tried before the top-level data set.
DcmItem* macro_item(DcmItem* dataset, const DcmTagKey& group_seq, long frame, const DcmTagKey& macro) {
  DcmItem* fg = nullptr;
  if (dataset->findAndGetSequenceItem(group_seq, fg, frame).bad() || fg == nullptr) return nullptr;
  DcmItem* m = nullptr;
  if (fg->findAndGetSequenceItem(macro, m, 0).bad()) return nullptr;
  return m;
}

template <typename Getter>
auto lookup(DcmItem* dataset, bool multiframe, long frame, const DcmTagKey& macro, Getter get)
    -> decltype(get(dataset)) {
  if (multiframe) {
    if (auto v = get(macro_item(dataset, DCM_PerFrameFunctionalGroupsSequence, frame, macro))) return v;
    if (auto v = get(macro_item(dataset, DCM_SharedFunctionalGroupsSequence, 0, macro))) return v;
  }
  return get(dataset);
}


// Free text in the file's SpecificCharacterSet (ISO_IR 100 = Latin-1, ...) to UTF-8 (DCMTK's converter); bytes
// that still are not UTF-8 (a wrong or missing character set) are escaped, never passed on.
std::string text_to_utf8(const std::string& raw, const std::string& charset) {
  bool ascii = true;
  for (char c : raw) ascii &= static_cast<unsigned char>(c) < 0x80;
  if (ascii) return raw;
  if (!charset.empty() && charset != "ISO_IR 192") {
    DcmSpecificCharacterSet converter;
    OFString out;
    if (converter.selectCharacterSet(charset.c_str()).good() &&
        converter.convertString(OFString(raw.c_str(), raw.size()), out).good())
      return valid_utf8(std::string(out.c_str(), out.length()));
  }
  return valid_utf8(raw);
}

// Checks what the header claims about the pixel data against the pixel data itself, before any buffer is
// sized from it: the length of native data; for encapsulated data the fragments and the first frame's own
// image header (read from the file, at most 4 KB). Returns why the image cannot be used, or "".
std::string pixel_data_defect(DcmItem* ds, const SliceHeader& h) {
  const std::string q = "'" + h.path + "'";
  if (h.rows <= 0 || h.columns <= 0) return "";  // refused by the series check with its own message
  if (h.rows > kMaxMatrix || h.columns > kMaxMatrix)
    return q + " claims a " + std::to_string(h.columns) + "x" + std::to_string(h.rows) + " matrix, over the " +
           std::to_string(kMaxMatrix) + " limit";
  if (h.pixel_spacing) {
    const auto& ps = *h.pixel_spacing;
    if (!(ps[0] > 0 && ps[1] > 0 && ps[0] < 1000 && ps[1] < 1000))
      return q + " has an impossible PixelSpacing " + std::to_string(ps[0]) + "\\" + std::to_string(ps[1]) + " mm";
  }
  if (!h.has_pixel_data || h.samples_per_pixel != 1 || (h.bits_allocated != 8 && h.bits_allocated != 16))
    return "";  // refused elsewhere with a message of its own
  DcmElement* el = nullptr;
  if (ds->findAndGetElement(DCM_PixelData, el).bad() || el == nullptr) return "";
  const DcmXfer x(h.transfer_syntax_uid.c_str());
  const uint64_t frame_bytes = static_cast<uint64_t>(h.rows) * static_cast<uint64_t>(h.columns) *
                               static_cast<uint64_t>(h.bits_allocated / 8);
  const uint64_t needed = frame_bytes * static_cast<uint64_t>(h.number_of_frames);
  if (x.getXfer() == EXS_Unknown) return "";  // refused when decoding, with the transfer syntax named
  if (x.isNotEncapsulated()) {
    if (x.getXfer() == EXS_DeflatedLittleEndianExplicit) return "";  // length known only after inflating
    const uint64_t have = el->getLength();
    if (have < needed)
      return q + ": pixel data holds " + std::to_string(have) + " bytes, fewer than the " + std::to_string(needed) +
             " that Rows x Columns x BitsAllocated x frames need (truncated file?)";
    if (have > needed + 1)
      return q + ": pixel data holds " + std::to_string(have) + " bytes, more than the " + std::to_string(needed) +
             " that Rows x Columns x BitsAllocated x frames need: the header does not describe the data";
    return "";
  }
  try {
    auto* pd = dynamic_cast<DcmPixelData*>(el);
    DcmPixelSequence* seq = nullptr;
    if (pd == nullptr || pd->getEncapsulatedRepresentation(x.getXfer(), nullptr, seq).bad() || seq == nullptr)
      return q + ": encapsulated pixel data cannot be read (truncated file?)";
    const dicom::Codestream kind = dicom::codestream_kind(h.transfer_syntax_uid);
    const auto frames = dicom::frame_fragments(seq, h.number_of_frames, kind, h.path);
    DcmPixelItem* item = nullptr;
    if (seq->getItem(item, frames.front().first).bad() || item == nullptr)
      return q + ": encapsulated pixel data cannot be read (truncated file?)";
    const Uint32 len = std::min<Uint32>(item->getLength(), 4096);
    std::vector<uint8_t> head(len);
    DcmFileCache cache;
    if (len == 0 || item->getPartialValue(head.data(), 0, len, &cache).bad())
      return q + ": the first compressed frame cannot be read (truncated file?)";
    dicom::check_frame_header(head.data(), head.size(), item->getLength(), kind, h, h.path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

}  // namespace cspine::dicom

namespace cspine {

bool SliceHeader::is_localizer() const {
  return std::find(image_type.begin(), image_type.end(), "LOCALIZER") != image_type.end();
}

bool SliceHeader::is_secondary_capture() const {
  return sop_class_uid.rfind("1.2.840.10008.5.1.4.1.1.7", 0) == 0;  // SC and multi-frame SC classes
}

std::vector<SliceHeader> read_slice_headers(const std::string& path) {
  DcmFileFormat file;
  dicom::load_file(file, path, /*headers_only=*/true);
  return dicom::slice_headers_of(file, path);
}

}  // namespace cspine

namespace cspine::dicom {

std::vector<SliceHeader> slice_headers_of(DcmFileFormat& file, const std::string& path) {
  constexpr long kMaxFrames = 65536;
  DcmItem* ds = file.getDataset();
  DcmItem* meta = file.getMetaInfo();
  using dicom::get_double;
  using dicom::get_doubles;
  using dicom::get_int;
  using dicom::get_string;

  SliceHeader base;
  base.path = path;
  base.transfer_syntax_uid = dicom::get_string(meta, DCM_TransferSyntaxUID);
  if (base.transfer_syntax_uid.empty()) {
    DcmXfer x(file.getDataset()->getOriginalXfer());
    base.transfer_syntax_uid = x.getXferID();
  }
  base.study_uid = get_string(ds, DCM_StudyInstanceUID);
  base.series_uid = get_string(ds, DCM_SeriesInstanceUID);
  base.sop_instance_uid = get_string(ds, DCM_SOPInstanceUID);
  base.sop_class_uid = get_string(ds, DCM_SOPClassUID);
  if (base.sop_class_uid.empty()) base.sop_class_uid = get_string(meta, DCM_MediaStorageSOPClassUID);
  base.modality = get_string(ds, DCM_Modality);
  base.photometric = get_string(ds, DCM_PhotometricInterpretation);
  base.specific_character_set = get_string(ds, DCM_SpecificCharacterSet);
  base.series_description = dicom::text_to_utf8(get_string(ds, DCM_SeriesDescription), base.specific_character_set);
  base.image_type = dicom::split_backslash(get_string(ds, DCM_ImageType));
  if (auto v = get_int(ds, DCM_InstanceNumber)) base.instance_number = static_cast<int>(*v);
  if (auto v = get_int(ds, DCM_SeriesNumber)) base.series_number = static_cast<int>(*v);
  base.rows = static_cast<int>(get_int(ds, DCM_Rows).value_or(0));
  base.columns = static_cast<int>(get_int(ds, DCM_Columns).value_or(0));
  base.bits_allocated = static_cast<int>(get_int(ds, DCM_BitsAllocated).value_or(0));
  base.bits_stored = static_cast<int>(get_int(ds, DCM_BitsStored).value_or(base.bits_allocated));
  base.high_bit = static_cast<int>(get_int(ds, DCM_HighBit).value_or(base.bits_stored - 1));
  base.pixel_representation = static_cast<int>(get_int(ds, DCM_PixelRepresentation).value_or(0));
  base.samples_per_pixel = static_cast<int>(get_int(ds, DCM_SamplesPerPixel).value_or(1));
  const long frames = get_int(ds, DCM_NumberOfFrames).value_or(1);
  // A header is not allowed to size anything by itself: a file claiming millions of frames is refused here,
  // before one SliceHeader per frame is made.
  if (frames > kMaxFrames)
    throw Error(ExitCode::unusable_series, "'" + path + "' claims NumberOfFrames " + std::to_string(frames) +
                                               ", over the " + std::to_string(kMaxFrames) + " limit");
  base.number_of_frames = std::max(1, static_cast<int>(frames));
  base.has_pixel_data = ds->tagExists(DCM_PixelData);
  base.gantry_tilt = get_double(ds, DCM_GantryDetectorTilt);
  const bool is_signed = base.pixel_representation == 1;
  base.padding_value = dicom::get_padding(ds, DCM_PixelPaddingValue, is_signed);
  base.padding_range_limit = dicom::get_padding(ds, DCM_PixelPaddingRangeLimit, is_signed);

  const bool multiframe = base.number_of_frames > 1 || ds->tagExists(DCM_SharedFunctionalGroupsSequence) ||
                          ds->tagExists(DCM_PerFrameFunctionalGroupsSequence);
  std::vector<SliceHeader> out;
  out.reserve(static_cast<std::size_t>(base.number_of_frames));
  for (long f = 0; f < base.number_of_frames; ++f) {
    SliceHeader h = base;
    h.frame = static_cast<int>(f);
    h.position = dicom::lookup(ds, multiframe, f, DCM_PlanePositionSequence,
                               [](DcmItem* it) { return get_doubles<3>(it, DCM_ImagePositionPatient); });
    h.orientation = dicom::lookup(ds, multiframe, f, DCM_PlaneOrientationSequence,
                                  [](DcmItem* it) { return get_doubles<6>(it, DCM_ImageOrientationPatient); });
    h.pixel_spacing = dicom::lookup(ds, multiframe, f, DCM_PixelMeasuresSequence,
                                    [](DcmItem* it) { return get_doubles<2>(it, DCM_PixelSpacing); });
    h.slice_thickness = dicom::lookup(ds, multiframe, f, DCM_PixelMeasuresSequence,
                                      [](DcmItem* it) { return get_double(it, DCM_SliceThickness); });
    if (auto s = dicom::lookup(ds, multiframe, f, DCM_PixelValueTransformationSequence,
                               [](DcmItem* it) { return get_double(it, DCM_RescaleSlope); }))
      h.rescale_slope = *s;
    if (auto s = dicom::lookup(ds, multiframe, f, DCM_PixelValueTransformationSequence,
                               [](DcmItem* it) { return get_double(it, DCM_RescaleIntercept); }))
      h.rescale_intercept = *s;
    if (h.rescale_slope == 0.0) h.rescale_slope = 1.0;  // a zero slope is a broken header, not a real scale
    if (multiframe && h.image_type.size() <= 1) {
      const std::string ft = dicom::lookup(ds, multiframe, f, DCM_CTImageFrameTypeSequence, [](DcmItem* it) {
        std::optional<std::string> r;
        std::string s = get_string(it, DCM_FrameType);
        if (!s.empty()) r = s;
        return r;
      }).value_or("");
      if (!ft.empty()) h.image_type = dicom::split_backslash(ft);
    }
    out.push_back(std::move(h));
  }
  // One check of the pixel data for the file, recorded on each of its frames.
  if (!out.empty()) {
    const std::string defect = dicom::pixel_data_defect(ds, out.front());
    for (auto& h : out) {
      if (!defect.empty()) h.defect = defect;
      else if (h.pixel_spacing && h.defect.empty()) {
        const auto& ps = *h.pixel_spacing;  // per-frame spacing of enhanced images
        if (!(ps[0] > 0 && ps[1] > 0 && ps[0] < 1000 && ps[1] < 1000))
          h.defect = "'" + path + "' frame " + std::to_string(h.frame) + " has an impossible PixelSpacing";
      }
    }
  }
  return out;
}

}  // namespace cspine::dicom
