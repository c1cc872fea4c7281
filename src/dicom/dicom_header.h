// Internal: reading header fields from a DCMTK dataset, including the functional groups of
// multi-frame (enhanced) images.
#pragma once
#include <string>
#include <vector>

#include "cspine/dicom.h"

#include "cspine/error.h"

class DcmFileFormat;

namespace cspine::dicom {

// Thrown for files that are not DICOM at all (they are skipped silently, at debug level).
struct NotDicom : Error {
  explicit NotDicom(const std::string& m) : Error(ExitCode::no_dicom, m) {}
};

// True when the file starts like DICOM: "DICM" at offset 128, or a raw data set beginning with
// a group 0x0002/0x0008 element (old ACR-NEMA style files without preamble).
bool looks_like_dicom(const std::string& path);

// The header of every image (frame) of an already loaded file, with `defect` set where the header disagrees
// with the data (see SliceHeader::defect). Used when indexing and again when decoding, so that a file replaced
// between the two is noticed.
std::vector<SliceHeader> slice_headers_of(DcmFileFormat& file, const std::string& path);

// Loads `path` (headers only when `headers_only`, large values stay on disk) or throws NotDicom/Error.
void load_file(DcmFileFormat& file, const std::string& path, bool headers_only);

}  // namespace cspine::dicom
