#include "dicom/codecs.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcvr.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpeg/djencode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/dcmjpls/djencode.h>
#include <dcmtk/oflog/oflog.h>

#include <gdcmImageChangeTransferSyntax.h>
#include <gdcmImageReader.h>
#include <gdcmImageWriter.h>

#include <cstdlib>
#include <mutex>
#include <string>

#include "cspine/dicom.h"
#include "cspine/error.h"

namespace cspine::dicom {

namespace {
// DCMTK reads its data dictionary from files at run time (Debian: DCM_DICT_DEFAULT_PATH, or DCMDICTPATH).
// Without it every tag lookup fails, so implicit VR files and most writing go wrong in confusing ways: say
// so plainly instead.
void check_dictionary() {
  static const bool loaded = dcmDataDict.isDictionaryLoaded();
  if (loaded) return;
  const char* env = std::getenv("DCMDICTPATH");
  throw Error(ExitCode::internal,
              std::string("DCMTK's DICOM data dictionary could not be loaded from ") +
                  (env ? "DCMDICTPATH='" + std::string(env) + "'" : std::string("'") + DCM_DICT_DEFAULT_PATH + "'") +
                  ": install DCMTK's data files (Debian: libdcmtk17) or set DCMDICTPATH to a dicom.dic");
}
}  // namespace

void ensure_codecs() {
  check_dictionary();
  static std::once_flag once;
  std::call_once(once, [] {
    // DCMTK logs to its own logger; cspine reports what matters through its warnings instead.
    OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
    // Elements stored with VR UN (an implicit-VR file converted by a tool that did not know the tag) are read
    // with their dictionary VR, so Rows stays 512 instead of "00\\02" as hex text.
    dcmEnableUnknownVRConversion.set(OFTrue);
    DJDecoderRegistration::registerCodecs();
    DJEncoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DJLSEncoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
    DcmRLEEncoderRegistration::registerCodecs();
  });
}

void encode_jpeg2000_lossless(const std::string& in, const std::string& out) {
  gdcm::ImageReader reader;
  reader.SetFileName(in.c_str());
  if (!reader.Read()) throw OutputError("cannot re-read '" + in + "' for JPEG 2000 encoding");
  gdcm::ImageChangeTransferSyntax change;
  change.SetTransferSyntax(gdcm::TransferSyntax::JPEG2000Lossless);
  change.SetInput(reader.GetImage());
  if (!change.Change()) throw OutputError("GDCM cannot encode '" + out + "' as JPEG 2000");
  gdcm::ImageWriter writer;
  writer.SetFileName(out.c_str());
  writer.SetFile(reader.GetFile());
  writer.SetImage(change.GetOutput());
  if (!writer.Write()) throw OutputError("cannot write DICOM file '" + out + "'");
}

}  // namespace cspine::dicom

namespace cspine {

std::string transfer_syntax_name(const std::string& uid) {
  DcmXfer x(uid.c_str());
  if (x.getXfer() == EXS_Unknown) return uid;
  return x.getXferName();
}

bool transfer_syntax_is_lossy(const std::string& uid) {
  DcmXfer x(uid.c_str());
  if (x.getXfer() == EXS_Unknown) return false;
  return x.isEncapsulated() && x.isLossy();
}

}  // namespace cspine
