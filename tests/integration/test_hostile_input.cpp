// Hostile and broken files (issue 14): each test builds the damaged input a probe found, and requires a clear,
// per-file outcome (the slice left out with a warning naming it, or a SeriesError naming it) instead of a crash,
// an abort inside a codec, a silent acceptance or an internal error. Before the fixes each of these crashed
// (JPEG 2000 overflow, GDCM assertion on truncation), threw a foreign exception, or loaded the wrong data.
#include <gtest/gtest.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>

#include <fstream>

#include "cspine/error.h"
#include "support/fixtures.h"
#include "util/text.h"

#include <nlohmann/json.hpp>

using namespace cspine;
using namespace cspine::test;

namespace {

bool has(const Warnings& ws, const std::string& code, const std::string& text = "", std::string* message = nullptr) {
  for (const auto& w : ws)
    if (w.code == code && w.message.find(text) != std::string::npos) {
      if (message) *message = w.message;
      return true;
    }
  return false;
}

std::string all_text(const Warnings& ws) {
  std::string s;
  for (const auto& w : ws) s += "[" + w.code + "] " + w.message + "\n";
  return s;
}

// Offset just past the (7FE0,0010) element's tag in a file (the last occurrence).
std::size_t pixel_tag_offset(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string tag("\xE0\x7F\x10\x00", 4);
  const std::size_t at = bytes.rfind(tag);
  EXPECT_NE(at, std::string::npos) << path;
  return at;
}

SeriesSpec small(TransferSyntax ts, int slices = 5) { return small_series(slices, ts); }

}  // namespace

// 1. A JPEG 2000 frame larger than Rows x Columns overflowed GDCM's output buffer (heap corruption).
TEST(HostileInput, Jpeg2000FrameLargerThanHeaderIsRefusedBeforeDecoding) {
  TempDir tmp;
  const auto w = write_series(tmp / "s", small(TransferSyntax::jpeg2000_lossless));
  edit_dicom_file(w.files[2], [](DcmDataset& d) {
    d.putAndInsertUint16(DCM_Rows, 16);
    d.putAndInsertUint16(DCM_Columns, 8);
  });
  const StudyIndex index = scan_studies(tmp.str());
  const LoadedSeries l = load_study(index, "");
  EXPECT_EQ(l.volume.size[2], 4) << all_text(l.warnings);
  std::string msg;
  ASSERT_TRUE(has(l.warnings, warn::skipped_file, w.files[2], &msg)) << all_text(l.warnings);
  EXPECT_NE(msg.find("32x32"), std::string::npos) << msg;  // what the codestream says
  // Decoding that one file directly (bypassing the index's check) is refused too, by the frame check.
  std::vector<SliceHeader> h = read_slice_headers(w.files[2]);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_FALSE(h[0].defect.empty());
  h[0].defect.clear();
  try {
    decode_slice_hu(h[0]);
    FAIL() << "decoded a frame that does not fit its header";
  } catch (const SeriesError& e) {
    EXPECT_NE(std::string(e.what()).find(w.files[2]), std::string::npos) << e.what();
  }
}

// 2. Encapsulated data cut a few bytes after the pixel data tag tripped an assertion inside GDCM (abort).
TEST(HostileInput, TruncatedEncapsulatedPixelDataIsSkippedInEveryCodec) {
  for (const auto ts : {TransferSyntax::jpeg_lossless_sv1, TransferSyntax::jpeg_ls_lossless, TransferSyntax::rle,
                        TransferSyntax::jpeg2000_lossless}) {
    for (const std::size_t cut : {4u, 12u, 20u, 28u}) {
      TempDir tmp;
      const auto w = write_series(tmp / "s", small(ts));
      fs::resize_file(w.files[1], pixel_tag_offset(w.files[1]) + cut);
      StudyIndex index;
      try {
        index = scan_studies(tmp.str());
      } catch (const Error& e) {
        FAIL() << transfer_syntax_uid(ts) << " cut " << cut << ": " << e.what();
      }
      const LoadedSeries l = load_study(index, "");
      EXPECT_EQ(l.volume.size[2], 4) << transfer_syntax_uid(ts) << " cut " << cut;
      std::string all = all_text(l.warnings) + all_text(index.warnings);
      EXPECT_NE(all.find(w.files[1]), std::string::npos) << transfer_syntax_uid(ts) << " cut " << cut << ": " << all;
    }
  }
}

// 3. Latin-1 text (SpecificCharacterSet ISO_IR 100) is converted to UTF-8, and anything that is still not UTF-8
// is escaped, never handed to the JSON writer as is.
TEST(HostileInput, Latin1TextBecomesUtf8) {
  TempDir tmp;
  const auto w = write_series(tmp / "s", small(TransferSyntax::explicit_little, 3));
  for (const auto& f : w.files)
    edit_dicom_file(f, [](DcmDataset& d) {
      d.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 100");
      d.putAndInsertString(DCM_SeriesDescription, "HWS Wirbels\xE4ule");
    });
  const StudyIndex index = scan_studies(tmp.str());
  EXPECT_EQ(index.studies.at(0).series.at(0).description, "HWS Wirbels\xC3\xA4ule");
  // No character set declared: the byte is escaped.
  for (const auto& f : w.files) edit_dicom_file(f, [](DcmDataset& d) { d.findAndDeleteElement(DCM_SpecificCharacterSet); });
  const StudyIndex raw = scan_studies(tmp.str());
  EXPECT_EQ(raw.studies.at(0).series.at(0).description, "HWS Wirbels\\xE4ule");
}

TEST(HostileInput, JsonNeverThrowsOnInvalidUtf8) {
  nlohmann::json j = {{"file", "/data/Wirbels\xE4ule/1.dcm"}, {"list", {"ok", "bad\xFF"}}, {"k\xE4y", 1}};
  std::string text;
  ASSERT_NO_THROW(text = dump_json(j, 1));
  const auto back = nlohmann::json::parse(text);
  EXPECT_EQ(back["file"], "/data/Wirbels\\xE4ule/1.dcm");
  EXPECT_EQ(back["list"][1], "bad\\xFF");
  EXPECT_TRUE(back.contains("k\\xE4y"));
  EXPECT_EQ(valid_utf8("caf\xC3\xA9"), "caf\xC3\xA9");        // valid UTF-8 untouched
  EXPECT_EQ(valid_utf8("\xED\xA0\x80"), "\\xED\\xA0\\x80");  // a UTF-16 surrogate is not UTF-8
  EXPECT_EQ(valid_utf8("\xC0\xAF"), "\\xC0\\xAF");            // overlong
}

// 5. A file replaced between indexing and loading (another study's slice, another matrix) is skipped, not scored
// under the indexed study; pixel data longer than the header describes is refused.
TEST(HostileInput, FileReplacedAfterIndexingIsSkipped) {
  TempDir tmp;
  const auto w = write_series(tmp / "s", small(TransferSyntax::explicit_little));
  SeriesSpec other = small(TransferSyntax::explicit_little, 2);
  other.rows = other.columns = 16;
  const auto o = write_series(tmp.str() + "/../" + tmp.path().filename().string() + "-other", other);
  const StudyIndex index = scan_studies(tmp.str());
  fs::copy_file(o.files[0], w.files[3], fs::copy_options::overwrite_existing);
  const LoadedSeries l = load_study(index, "");
  EXPECT_EQ(l.volume.size[2], 4);
  std::string msg;
  ASSERT_TRUE(has(l.warnings, warn::skipped_file, "changed after it was indexed", &msg)) << all_text(l.warnings);
  EXPECT_NE(msg.find(w.files[3]), std::string::npos) << msg;
  fs::remove_all(fs::path(o.files[0]).parent_path());
}

TEST(HostileInput, PixelDataLongerThanTheHeaderSaysIsRefused) {
  TempDir tmp;
  const auto w = write_series(tmp / "s", small(TransferSyntax::explicit_little));
  edit_dicom_file(w.files[2], [](DcmDataset& d) { d.putAndInsertUint16(DCM_Rows, 16); });  // data is 32 rows
  const LoadedSeries l = load_study(scan_studies(tmp.str()), "");
  EXPECT_EQ(l.volume.size[2], 4);
  EXPECT_EQ(l.volume.size[1], 32);
  EXPECT_TRUE(has(l.warnings, warn::skipped_file, w.files[2])) << all_text(l.warnings);
  EXPECT_TRUE(has(l.warnings, warn::skipped_file, "more than")) << all_text(l.warnings);
}

// 6. Impossible geometry is refused naming the file (exit 5); one slice of another matrix size or pixel spacing
// is left out with a warning instead of making the series unusable.
TEST(HostileInput, ZeroPixelSpacingIsRefusedNamingTheFile) {
  TempDir tmp;
  const auto w = write_series(tmp / "s", small(TransferSyntax::explicit_little, 3));
  for (const auto& f : w.files) edit_dicom_file(f, [](DcmDataset& d) { d.putAndInsertString(DCM_PixelSpacing, "0\\0"); });
  try {
    load_study(scan_studies(tmp.str()), "");
    FAIL() << "a volume with zero pixel spacing was loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::unusable_series) << e.what();
    EXPECT_NE(std::string(e.what()).find("PixelSpacing"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(tmp.str()), std::string::npos) << e.what();
  }
}

TEST(HostileInput, OddSliceOfAnotherMatrixOrSpacingIsDropped) {
  TempDir tmp;
  const auto w = write_series(tmp / "s", small(TransferSyntax::explicit_little, 6));
  SeriesSpec odd = small(TransferSyntax::explicit_little, 1);
  odd.rows = odd.columns = 16;
  odd.study_uid = w.study_uid;
  odd.series_uid = w.series_uid;
  odd.origin[2] = 100;
  write_series(tmp / "s2", odd);
  edit_dicom_file(w.files[4], [](DcmDataset& d) { d.putAndInsertString(DCM_PixelSpacing, "0.9\\0.9"); });
  const LoadedSeries l = load_study(scan_studies(tmp.str()), "");
  EXPECT_EQ(l.volume.size[0], 32);
  EXPECT_EQ(l.volume.size[2], 5) << all_text(l.warnings);
  EXPECT_TRUE(has(l.warnings, warn::mixed_series, "another matrix size or pixel spacing")) << all_text(l.warnings);
  EXPECT_NEAR(l.volume.spacing[0], 0.6, 1e-9);
}

// 8. Sizes from headers: a huge claimed matrix is refused before anything is allocated, with exit 5.
TEST(HostileInput, HugeClaimedMatrixIsRefusedBeforeAllocation) {
  for (const auto ts : {TransferSyntax::explicit_little, TransferSyntax::jpeg2000_lossless}) {
    for (const int size : {8000, 32768}) {
      TempDir tmp;
      const auto w = write_series(tmp / "s", small(ts, 2));
      for (const auto& f : w.files)
        edit_dicom_file(f, [&](DcmDataset& d) {
          d.putAndInsertUint16(DCM_Rows, static_cast<Uint16>(size));
          d.putAndInsertUint16(DCM_Columns, static_cast<Uint16>(size));
        });
      try {
        load_study(scan_studies(tmp.str()), "");
        FAIL() << "loaded a " << size << " matrix from 32x32 data";
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ExitCode::unusable_series) << e.what();
        EXPECT_NE(std::string(e.what()).find(tmp.str()), std::string::npos) << e.what();
      }
    }
  }
}

TEST(HostileInput, UnknownVrElementsAreReadWithTheirDictionaryVr) {
  TempDir tmp;
  const auto w = write_series(tmp / "s", small(TransferSyntax::explicit_little, 2));
  edit_dicom_file(w.files[0], [](DcmDataset& d) {
    d.findAndDeleteElement(DCM_InstanceNumber);
    auto* un = new DcmOtherByteOtherWord(DcmTag(DCM_InstanceNumber, EVR_UN));
    const char value[] = "42";  // IS "42", even length
    un->putUint8Array(reinterpret_cast<const Uint8*>(value), 2);
    d.insert(un, true);
  });
  const auto h = read_slice_headers(w.files[0]);
  ASSERT_TRUE(h.at(0).instance_number.has_value());
  EXPECT_EQ(*h[0].instance_number, 42);
}

TEST(HostileInput, UnreadableFileInASharedFolderIsNotBlamedOnAnUnrelatedStudy) {
  TempDir tmp;
  SeriesSpec a = small(TransferSyntax::explicit_little, 3), b = a;
  write_series(tmp / "mixed", a, [](int k) { return "a" + std::to_string(k); });
  write_series(tmp / "mixed", b, [](int k) { return "b" + std::to_string(k); });
  {
    std::ofstream junk(tmp / "mixed/broken.dcm", std::ios::binary);
    junk << std::string(128, '\0') << "DICM" << std::string(6, '\x02');  // a DICOM start, then nothing usable
  }
  const StudyIndex index = scan_studies(tmp.str());
  ASSERT_EQ(index.studies.size(), 2u);
  EXPECT_TRUE(has(index.warnings, warn::skipped_file, "broken.dcm")) << all_text(index.warnings);
  for (const auto& s : index.studies)
    for (const auto& se : s.series) EXPECT_FALSE(has(se.warnings, warn::skipped_file, "broken.dcm"));
}
