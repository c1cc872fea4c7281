#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmjpeg/djrplol.h>
#include <dcmtk/dcmjpls/djrparam.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>
#include <sstream>

#include "cspine/dicom_writer.h"
#include "cspine/error.h"
#include "dicom/codecs.h"

namespace cspine {

std::optional<TransferSyntax> parse_transfer_syntax(const std::string& name) {
  if (name == "explicit") return TransferSyntax::explicit_little;
  if (name == "implicit") return TransferSyntax::implicit_little;
  if (name == "big-endian") return TransferSyntax::explicit_big;
  if (name == "deflated") return TransferSyntax::deflated;
  if (name == "jpeg-lossless") return TransferSyntax::jpeg_lossless_sv1;
  if (name == "jpeg-ls") return TransferSyntax::jpeg_ls_lossless;
  if (name == "rle") return TransferSyntax::rle;
  if (name == "j2k" || name == "jpeg2000") return TransferSyntax::jpeg2000_lossless;
  return std::nullopt;
}

namespace {
E_TransferSyntax to_dcmtk(TransferSyntax ts) {
  switch (ts) {
    case TransferSyntax::explicit_little: return EXS_LittleEndianExplicit;
    case TransferSyntax::implicit_little: return EXS_LittleEndianImplicit;
    case TransferSyntax::explicit_big: return EXS_BigEndianExplicit;
    case TransferSyntax::deflated: return EXS_DeflatedLittleEndianExplicit;
    case TransferSyntax::jpeg_lossless_sv1: return EXS_JPEGProcess14SV1;
    case TransferSyntax::jpeg_ls_lossless: return EXS_JPEGLSLossless;
    case TransferSyntax::rle: return EXS_RLELossless;
    case TransferSyntax::jpeg2000_lossless: return EXS_JPEG2000LosslessOnly;
  }
  return EXS_LittleEndianExplicit;
}

std::string ds(double v) {
  std::ostringstream os;
  os.precision(10);
  os << v;
  std::string s = os.str();
  if (s.size() > 16) {  // DS is at most 16 characters
    os.str("");
    os.precision(8);
    os << v;
    s = os.str();
  }
  return s;
}

// The dictionary lookup by keyword is a linear scan, so each keyword is resolved once per process.
DcmTagKey tag_by_keyword(const std::string& keyword) {
  static std::mutex mutex;
  static std::map<std::string, DcmTagKey> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(keyword);
  if (it != cache.end()) return it->second;
  DcmTag tag;
  if (DcmTag::findTagFromName(keyword.c_str(), tag).bad()) throw OutputError("unknown DICOM keyword '" + keyword + "'");
  cache.emplace(keyword, tag.getXTag());
  return tag.getXTag();
}

void put(DcmDataset* d, const DcmTagKey& tag, const std::string& value) {
  OFCondition c = d->putAndInsertString(tag, value.c_str());
  if (c.bad()) throw OutputError(std::string("cannot set DICOM tag: ") + c.text());
}
}  // namespace

std::string transfer_syntax_uid(TransferSyntax ts) { return DcmXfer(to_dcmtk(ts)).getXferID(); }

std::string make_uid() {
  char buf[100];
  dcmGenerateUniqueIdentifier(buf, SITE_INSTANCE_UID_ROOT);
  return buf;
}

void write_ct_slice(const std::string& path, const CtSliceSpec& s, const std::vector<int16_t>& hu, TransferSyntax ts) {
  dicom::ensure_codecs();
  if (s.write_pixel_data && hu.size() != static_cast<std::size_t>(s.rows) * static_cast<std::size_t>(s.columns))
    throw OutputError("write_ct_slice: " + std::to_string(hu.size()) + " values for a " + std::to_string(s.rows) +
                      "x" + std::to_string(s.columns) + " slice");
  DcmFileFormat file;
  DcmDataset* d = file.getDataset();
  const std::string sop = s.sop_instance_uid.empty() ? make_uid() : s.sop_instance_uid;
  put(d, DCM_SOPClassUID, s.sop_class_uid);
  put(d, DCM_SOPInstanceUID, sop);
  put(d, DCM_StudyInstanceUID, s.study_uid);
  put(d, DCM_SeriesInstanceUID, s.series_uid);
  put(d, DCM_FrameOfReferenceUID, s.study_uid.empty() ? std::string() : s.study_uid + ".1");
  put(d, DCM_PatientID, s.patient_id);
  put(d, DCM_PatientName, s.patient_name);
  put(d, DCM_StudyDate, s.study_date);
  put(d, DCM_ContentDate, s.study_date);
  put(d, DCM_Modality, s.modality);
  put(d, DCM_Manufacturer, "cspine");
  put(d, DCM_SeriesDescription, s.series_description);
  put(d, DCM_SeriesNumber, std::to_string(s.series_number));
  if (s.instance_number) put(d, DCM_InstanceNumber, std::to_string(*s.instance_number));
  std::string it;
  for (std::size_t i = 0; i < s.image_type.size(); ++i) it += (i ? "\\" : "") + s.image_type[i];
  put(d, DCM_ImageType, it);
  put(d, DCM_ImagePositionPatient, ds(s.position[0]) + "\\" + ds(s.position[1]) + "\\" + ds(s.position[2]));
  std::string o;
  for (int i = 0; i < 6; ++i) o += (i ? "\\" : "") + ds(s.orientation[static_cast<std::size_t>(i)]);
  put(d, DCM_ImageOrientationPatient, o);
  put(d, DCM_PixelSpacing, ds(s.pixel_spacing[0]) + "\\" + ds(s.pixel_spacing[1]));
  put(d, DCM_SliceThickness, ds(s.slice_thickness));
  if (s.slice_location) put(d, DCM_SliceLocation, ds(*s.slice_location));
  for (const auto& [keyword, value] : s.extra) put(d, tag_by_keyword(keyword), value);
  put(d, DCM_KVP, "120");
  put(d, DCM_RescaleSlope, ds(s.rescale_slope));
  put(d, DCM_RescaleIntercept, ds(s.rescale_intercept));
  put(d, DCM_RescaleType, "HU");
  put(d, DCM_WindowCenter, ds(s.window_center));
  put(d, DCM_WindowWidth, ds(s.window_width));
  put(d, DCM_PhotometricInterpretation, "MONOCHROME2");
  d->putAndInsertUint16(DCM_SamplesPerPixel, 1);
  d->putAndInsertUint16(DCM_Rows, static_cast<Uint16>(s.rows));
  d->putAndInsertUint16(DCM_Columns, static_cast<Uint16>(s.columns));
  d->putAndInsertUint16(DCM_BitsAllocated, 16);
  d->putAndInsertUint16(DCM_BitsStored, static_cast<Uint16>(s.bits_stored));
  d->putAndInsertUint16(DCM_HighBit, static_cast<Uint16>(s.bits_stored - 1));
  d->putAndInsertUint16(DCM_PixelRepresentation, s.is_signed ? 1 : 0);
  if (s.padding_value) {
    if (s.is_signed) d->putAndInsertSint16(DCM_PixelPaddingValue, static_cast<Sint16>(*s.padding_value));
    else d->putAndInsertUint16(DCM_PixelPaddingValue, static_cast<Uint16>(*s.padding_value));
  }
  if (s.write_pixel_data) {
    const long lo = s.is_signed ? -(1L << (s.bits_stored - 1)) : 0;
    const long hi = s.is_signed ? (1L << (s.bits_stored - 1)) - 1 : (1L << s.bits_stored) - 1;
    std::vector<Uint16> stored(hu.size());
    // Integer path for the usual slope 1 and whole intercept; rounding otherwise.
    const bool integral = s.rescale_slope == 1.0 && s.rescale_intercept == std::floor(s.rescale_intercept);
    const long offset = static_cast<long>(s.rescale_intercept);
    for (std::size_t i = 0; i < hu.size(); ++i) {
      const long raw = integral ? hu[i] - offset : std::lround((hu[i] - s.rescale_intercept) / s.rescale_slope);
      const long v = std::clamp(raw, lo, hi);
      // Two's complement within BitsStored bits for signed values, as the standard stores them.
      stored[i] = static_cast<Uint16>(static_cast<uint32_t>(v) & ((1u << s.bits_stored) - 1u));
    }
    OFCondition c = d->putAndInsertUint16Array(DCM_PixelData, stored.data(), static_cast<unsigned long>(stored.size()));
    if (c.bad()) throw OutputError(std::string("cannot set pixel data: ") + c.text());
  }

  if (ts == TransferSyntax::jpeg2000_lossless) {
    // DCMTK writes the data set uncompressed, GDCM re-encodes it; the intermediate file is removed.
    const std::string tmp = path + ".dcmtk-tmp";
    OFCondition c = file.saveFile(tmp.c_str(), EXS_LittleEndianExplicit);
    if (c.bad()) throw OutputError("cannot write DICOM file '" + tmp + "': " + c.text());
    try {
      dicom::encode_jpeg2000_lossless(tmp, path);
    } catch (...) {
      std::remove(tmp.c_str());
      throw;
    }
    std::remove(tmp.c_str());
    return;
  }
  const E_TransferSyntax xfer = to_dcmtk(ts);
  if (DcmXfer(xfer).isEncapsulated()) {
    DJ_RPLossless jpeg_params(1, 0);  // predictor 1 (SV1), point transform 0
    DJLSRepresentationParameter jls_params(0, OFTrue);
    const DcmRepresentationParameter* params = nullptr;
    if (ts == TransferSyntax::jpeg_lossless_sv1) params = &jpeg_params;
    if (ts == TransferSyntax::jpeg_ls_lossless) params = &jls_params;
    OFCondition c = d->chooseRepresentation(xfer, params);
    if (c.bad() || !d->canWriteXfer(xfer))
      throw OutputError("cannot encode '" + path + "' as " + DcmXfer(xfer).getXferName() + ": " + c.text());
  }
  OFCondition c = file.saveFile(path.c_str(), xfer);
  if (c.bad()) throw OutputError("cannot write DICOM file '" + path + "': " + c.text());
}

}  // namespace cspine
