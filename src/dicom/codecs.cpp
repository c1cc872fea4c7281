#include "dicom/codecs.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpeg/djencode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/dcmjpls/djencode.h>
#include <dcmtk/oflog/oflog.h>

#include <mutex>
#include <string>

#include "cspine/dicom.h"

namespace cspine::dicom {

void ensure_codecs() {
  static std::once_flag once;
  std::call_once(once, [] {
    // DCMTK logs to its own logger; cspine reports what matters through its warnings instead.
    OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
    DJDecoderRegistration::registerCodecs();
    DJEncoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DJLSEncoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
    DcmRLEEncoderRegistration::registerCodecs();
  });
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
