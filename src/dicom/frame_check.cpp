#include "dicom/frame_check.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dccodec.h>
#include <dcmtk/dcmdata/dcfcache.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcpixseq.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "cspine/error.h"

namespace cspine::dicom {

namespace {

struct ImageHeader {
  uint32_t columns = 0, rows = 0, components = 0, precision = 0;
};

uint32_t be16(const uint8_t* p) { return (uint32_t{p[0]} << 8) | p[1]; }
uint32_t be32(const uint8_t* p) { return (be16(p) << 16) | be16(p + 2); }
uint32_t le32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}

// JPEG (ITU T.81) and JPEG-LS (T.87): walk the marker segments from SOI to the first frame header.
std::optional<ImageHeader> jpeg_header(const uint8_t* d, std::size_t n, bool ls, std::string& why) {
  if (n < 4 || d[0] != 0xFF || d[1] != 0xD8) {
    why = "does not start with a JPEG SOI marker";
    return std::nullopt;
  }
  std::size_t i = 2;
  while (i + 4 <= n) {
    if (d[i] != 0xFF) {
      why = "has a malformed JPEG marker segment";
      return std::nullopt;
    }
    const uint8_t m = d[i + 1];
    if (m == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (m == 0xD8 || m == 0xD9 || (m >= 0xD0 && m <= 0xD7) || m == 0x01) {
      why = "has no JPEG frame header before the image data";
      return std::nullopt;
    }
    const uint32_t len = be16(d + i + 2);
    if (len < 2) {
      why = "has a JPEG marker segment of length " + std::to_string(len);
      return std::nullopt;
    }
    const bool sof = ls ? m == 0xF7
                        : (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC);
    if (sof) {
      if (len < 8 || i + 2 + len > n) {
        why = "has a truncated JPEG frame header";
        return std::nullopt;
      }
      const uint8_t* s = d + i + 4;
      ImageHeader h;
      h.precision = s[0];
      h.rows = be16(s + 1);
      h.columns = be16(s + 3);
      h.components = s[5];
      return h;
    }
    if (m == 0xDA) {
      why = "has no JPEG frame header before the scan";
      return std::nullopt;
    }
    i += 2 + len;
  }
  why = "has no JPEG frame header in its first " + std::to_string(n) + " bytes";
  return std::nullopt;
}

// JPEG 2000 (ISO 15444-1): the SIZ marker right after SOC; a JP2 file is unwrapped to its codestream box.
std::optional<ImageHeader> j2k_header(const uint8_t* d, std::size_t n, std::string& why) {
  static const uint8_t jp2_signature[12] = {0, 0, 0, 0x0C, 'j', 'P', ' ', ' ', 0x0D, 0x0A, 0x87, 0x0A};
  if (n >= 12 && std::memcmp(d, jp2_signature, 12) == 0) {
    std::size_t i = 0;
    while (i + 8 <= n) {
      uint64_t len = be32(d + i);
      std::size_t header = 8;
      if (len == 1) {
        if (i + 16 > n) break;
        len = (uint64_t{be32(d + i + 8)} << 32) | be32(d + i + 12);
        header = 16;
      }
      if (std::memcmp(d + i + 4, "jp2c", 4) == 0) return j2k_header(d + i + header, n - i - header, why);
      if (len < header || len > n - i) break;
      i += static_cast<std::size_t>(len);
    }
    why = "is a JP2 file without a codestream box in its first " + std::to_string(n) + " bytes";
    return std::nullopt;
  }
  if (n < 4 || be16(d) != 0xFF4F || be16(d + 2) != 0xFF51) {
    why = "does not start with a JPEG 2000 SOC and SIZ marker";
    return std::nullopt;
  }
  if (n < 4 + 38 + 3) {
    why = "has a truncated JPEG 2000 SIZ marker";
    return std::nullopt;
  }
  const uint8_t* s = d + 4;
  const uint32_t lsiz = be16(s);
  const uint32_t xsiz = be32(s + 4), ysiz = be32(s + 8), xosiz = be32(s + 12), yosiz = be32(s + 16);
  const uint32_t csiz = be16(s + 36);
  if (csiz == 0 || csiz > 16384 || lsiz != 38 + 3 * csiz || xosiz >= xsiz || yosiz >= ysiz) {
    why = "has an inconsistent JPEG 2000 SIZ marker";
    return std::nullopt;
  }
  ImageHeader h;
  h.columns = xsiz - xosiz;
  h.rows = ysiz - yosiz;
  h.components = csiz;
  for (uint32_t c = 0; c < csiz; ++c) {
    const uint8_t* comp = s + 38 + 3 * c;
    if (4 + 38 + 3 * c + 3 > n) {
      why = "has a truncated JPEG 2000 SIZ marker";
      return std::nullopt;
    }
    const uint32_t precision = (comp[0] & 0x7Fu) + 1;
    if (comp[1] != 1 || comp[2] != 1) {
      why = "has subsampled JPEG 2000 components (XRsiz/YRsiz " + std::to_string(comp[1]) + "/" +
            std::to_string(comp[2]) + ")";
      return std::nullopt;
    }
    h.precision = std::max(h.precision, precision);
  }
  return h;
}

// RLE (PS3.5 annex G): a 64-byte header with the segment count and 15 offsets, then the segments.
void check_rle(const uint8_t* d, std::size_t n, std::size_t fragment_size, const SliceHeader& hd, const std::string& path) {
  const std::string where = "'" + path + "': ";
  if (n < 64) throw SeriesError(where + "RLE frame is shorter than its 64-byte header");
  const uint32_t segments = le32(d);
  const uint32_t expected = static_cast<uint32_t>(hd.samples_per_pixel) * static_cast<uint32_t>(hd.bits_allocated / 8);
  if (segments != expected)
    throw SeriesError(where + "RLE frame has " + std::to_string(segments) + " segment(s) where " +
                      std::to_string(expected) + " are needed for its samples and BitsAllocated");
  uint32_t prev = 64;
  for (uint32_t s = 0; s < segments; ++s) {
    const uint32_t off = le32(d + 4 + 4 * s);
    if (off < prev || off >= fragment_size)
      throw SeriesError(where + "RLE frame has segment offset " + std::to_string(off) + " outside its data");
    prev = off;
  }
}

}  // namespace

Codestream codestream_kind(const std::string& uid) {
  static const char* const jpeg_ls[] = {"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"};
  static const char* const j2k[] = {"1.2.840.10008.1.2.4.90",  "1.2.840.10008.1.2.4.91",  "1.2.840.10008.1.2.4.92",
                                    "1.2.840.10008.1.2.4.93",  "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
                                    "1.2.840.10008.1.2.4.203"};
  for (const char* u : jpeg_ls)
    if (uid == u) return Codestream::jpeg_ls;
  for (const char* u : j2k)
    if (uid == u) return Codestream::jpeg2000;
  if (uid == "1.2.840.10008.1.2.5") return Codestream::rle;
  // JPEG processes: 1.2.840.10008.1.2.4.50 .. .70 (baseline, extended, lossless and their retired siblings).
  const std::string prefix = "1.2.840.10008.1.2.4.";
  if (uid.rfind(prefix, 0) == 0) {
    try {
      const int k = std::stoi(uid.substr(prefix.size()));
      if (k >= 50 && k <= 70 && uid.size() <= prefix.size() + 2) return Codestream::jpeg;
    } catch (...) {
    }
  }
  return Codestream::other;
}

void check_frame_header(const uint8_t* data, std::size_t size, std::size_t fragment_size, Codestream kind,
                        const SliceHeader& h, const std::string& path) {
  const std::string where = "'" + path + "': ";
  std::string why;
  std::optional<ImageHeader> ih;
  switch (kind) {
    case Codestream::jpeg: ih = jpeg_header(data, size, false, why); break;
    case Codestream::jpeg_ls: ih = jpeg_header(data, size, true, why); break;
    case Codestream::jpeg2000: ih = j2k_header(data, size, why); break;
    case Codestream::rle: return check_rle(data, size, fragment_size, h, path);
    case Codestream::other:
      throw SeriesError(where + "pixel data in transfer syntax " + h.transfer_syntax_uid +
                        " is not supported (no decoder for CT)");
  }
  if (!ih) throw SeriesError(where + "compressed frame " + why);
  if (ih->columns != static_cast<uint32_t>(h.columns) || ih->rows != static_cast<uint32_t>(h.rows))
    throw SeriesError(where + "the compressed frame is " + std::to_string(ih->columns) + "x" +
                      std::to_string(ih->rows) + " pixels but the header says Columns x Rows " +
                      std::to_string(h.columns) + "x" + std::to_string(h.rows));
  if (ih->components != static_cast<uint32_t>(h.samples_per_pixel))
    throw SeriesError(where + "the compressed frame has " + std::to_string(ih->components) +
                      " component(s) but the header says SamplesPerPixel " + std::to_string(h.samples_per_pixel));
  if (ih->precision == 0 || ih->precision > static_cast<uint32_t>(h.bits_allocated))
    throw SeriesError(where + "the compressed frame has " + std::to_string(ih->precision) +
                      "-bit samples but the header says BitsAllocated " + std::to_string(h.bits_allocated));
}

std::vector<std::pair<unsigned long, unsigned long>> frame_fragments(DcmPixelSequence* seq, int frames,
                                                                     Codestream kind, const std::string& path) {
  const unsigned long items = seq ? seq->card() : 0;
  if (items < 2)
    throw SeriesError("'" + path + "': encapsulated pixel data holds no fragment (truncated file?)");
  std::vector<std::pair<unsigned long, unsigned long>> out;
  if (frames <= 1) {
    out.emplace_back(1, items);
    return out;
  }
  std::vector<unsigned long> starts;
  for (int f = 0; f < frames; ++f) {
    Uint32 start = 0;
    if (DcmCodec::determineStartFragment(static_cast<Uint32>(f), frames, seq, start).bad() || start < 1 ||
        start >= items || (!starts.empty() && start <= starts.back())) {
      starts.clear();
      break;
    }
    starts.push_back(start);
  }
  if (starts.empty()) {
    // No offset table and more fragments than frames: a frame starts at each fragment that starts a codestream.
    for (unsigned long i = 1; i < items; ++i) {
      DcmPixelItem* item = nullptr;
      Uint8 head[4] = {0, 0, 0, 0};
      DcmFileCache cache;
      if (seq->getItem(item, i).bad() || item == nullptr || item->getLength() < 4 ||
          item->getPartialValue(head, 0, 4, &cache).bad())
        continue;
      const bool begins = kind == Codestream::jpeg2000
                              ? (head[0] == 0xFF && head[1] == 0x4F) || (head[0] == 0 && head[3] == 0x0C)
                              : kind == Codestream::rle ? false : head[0] == 0xFF && head[1] == 0xD8;
      if (begins) starts.push_back(i);
    }
    if (starts.size() != static_cast<std::size_t>(frames) || starts.front() != 1)
      throw SeriesError("'" + path + "': cannot tell which fragments hold each of its " + std::to_string(frames) +
                        " frames (no offset table, " + std::to_string(items - 1) + " fragments)");
  }
  for (std::size_t f = 0; f < starts.size(); ++f)
    out.emplace_back(starts[f], f + 1 < starts.size() ? starts[f + 1] : items);
  return out;
}

}  // namespace cspine::dicom
