// Internal: what a compressed frame says about itself, checked against the DICOM header before any decoder sees
// it. Decoders (DCMTK's, GDCM's, OpenJPEG through GDCM) size their output from the DICOM header but write what
// the codestream holds: a JPEG 2000 frame larger than Rows x Columns overflowed GDCM's buffer. Parsing the
// codestream's own image header (JPEG SOF, JPEG-LS SOF55, JPEG 2000 SIZ, RLE segment table) first turns such a
// file into a clear error naming it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cspine/dicom.h"

class DcmDataset;
class DcmPixelSequence;

namespace cspine::dicom {

enum class Codestream { jpeg, jpeg_ls, jpeg2000, rle, other };

// The family of an encapsulated transfer syntax UID.
Codestream codestream_kind(const std::string& transfer_syntax_uid);

// What a frame's image header says. Throws SeriesError (naming `path`) when the bytes are not a well-formed
// header of the expected kind or disagree with `h` (size, components, precision). `data` holds the first
// bytes of the frame (at least its header; 4 KB is plenty for every supported kind).
// `fragment_size` is the length of the whole first fragment (`size` may be only its beginning).
void check_frame_header(const uint8_t* data, std::size_t size, std::size_t fragment_size, Codestream kind,
                        const SliceHeader& h, const std::string& path);

// The fragments (pixel items) of each frame of an encapsulated pixel data element, as [first, last) item
// indices; throws SeriesError when the sequence is empty or its fragments cannot be assigned to frames. Without a
// usable offset table, fragments that begin a codestream of `kind` (a JPEG SOI, a JPEG 2000 SOC) start frames.

std::vector<std::pair<unsigned long, unsigned long>> frame_fragments(DcmPixelSequence* seq, int frames,
                                                                     Codestream kind, const std::string& path);

}  // namespace cspine::dicom
