// fuzz_pixel_decode: untrusted bytes as one DICOM file -> read_slice_headers -> decode_slice_hu for its
// frames: DCMTK's native path (including big endian and deflate), its JPEG, JPEG-LS and RLE codecs, and GDCM
// for JPEG 2000 (and as DCMTK's fallback).
//
// Frames whose Rows or Columns are outside 1..4096 are not decoded (the harness, not the loader, refuses
// them, to keep one input's memory bounded); at most 4 frames per input are decoded, because
// decode_slice_hu decodes the whole file for each frame. cspine::Error is the expected answer to bad input.
#include <cstddef>
#include <cstdint>

#include "cspine/dicom.h"
#include "cspine/error.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cspine::fuzz::quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string path = cspine::fuzz::write_file(cspine::fuzz::work_dir(), "slice.dcm", data, size);
  std::vector<cspine::SliceHeader> headers;
  try {
    headers = cspine::read_slice_headers(path);
  } catch (const cspine::Error&) {
    return 0;
  }
  int decoded = 0;
  for (const auto& h : headers) {
    if (h.rows < 1 || h.columns < 1 || h.rows > 4096 || h.columns > 4096) continue;
    if (decoded++ == 4) break;
    try {
      const std::vector<int16_t> hu = cspine::decode_slice_hu(h);
      if (hu.size() != static_cast<std::size_t>(h.rows) * static_cast<std::size_t>(h.columns)) __builtin_trap();
    } catch (const cspine::Error&) {
    }
  }
  return 0;
}
