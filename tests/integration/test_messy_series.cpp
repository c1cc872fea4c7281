// Synthetic series written with DCMTK, made messy the ways real exports are: reversed numbering, names
// that mean nothing, junk files, a missing slice, a duplicate, a truncated file, every writable codec.
#include <gtest/gtest.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>

#include <fstream>
#include <random>

#include "cspine/error.h"
#include "support/fixtures.h"

using namespace cspine;
using namespace cspine::test;

namespace {

bool has(const Warnings& ws, const std::string& code, std::string* message = nullptr) {
  for (const auto& w : ws)
    if (w.code == code) {
      if (message) *message = w.message;
      return true;
    }
  return false;
}

// Checks volume slice k equals expected slice `expected_index` of the written series.
void expect_slice(const Volume& v, int k, const WrittenSeries& w, std::size_t expected_index) {
  ASSERT_LT(expected_index, w.hu.size());
  const int16_t* s = v.slice(k);
  for (std::size_t i = 0; i < w.hu[expected_index].size(); ++i)
    ASSERT_EQ(s[i], w.hu[expected_index][i]) << "slice " << k << " voxel " << i;
}

}  // namespace

TEST(MessySeries, ReversedNumberingAndMeaninglessNamesStillOrderByPosition) {
  TempDir tmp;
  SeriesSpec spec;
  spec.slices = 9;
  spec.head_first_numbering = true;
  std::vector<std::string> names;
  std::mt19937 rng(5);
  for (int k = 0; k < spec.slices; ++k) names.push_back("IM" + std::to_string(rng() % 100000) + "_" + std::to_string(k));
  std::shuffle(names.begin(), names.end(), rng);
  const auto w = write_series(tmp / "study", spec, [&](int k) { return names[static_cast<std::size_t>(k)]; });
  const LoadedSeries l = load_study(scan_studies(tmp.str()), "");
  ASSERT_EQ(l.volume.size[2], 9);
  for (int k = 0; k < 9; ++k) expect_slice(l.volume, k, w, static_cast<std::size_t>(k));
  EXPECT_FALSE(has(l.warnings, warn::reversed_order));  // head-first numbering is normal
  EXPECT_TRUE(l.geometry.reversed_numbering);
  EXPECT_NEAR(l.volume.spacing[2], spec.spacing_z, 1e-6);
  EXPECT_NEAR(l.volume.spacing[0], spec.pixel_spacing[1], 1e-9);  // columns step = PixelSpacing[1]
  EXPECT_NEAR(l.volume.spacing[1], spec.pixel_spacing[0], 1e-9);
  EXPECT_NEAR(l.volume.origin[2], spec.origin[2], 1e-6);
  for (int k = 0; k < 9; ++k) EXPECT_EQ(l.slice_files[static_cast<std::size_t>(k)], w.files[static_cast<std::size_t>(k)]);
}

TEST(MessySeries, JunkFilesAreIgnored) {
  TempDir tmp;
  SeriesSpec spec;
  spec.slices = 4;
  const auto w = write_series(tmp / "s", spec);
  std::ofstream(tmp / "s/DICOMDIR.txt") << "index";
  std::ofstream(tmp / "s/preview.jpg") << "\xff\xd8\xff\xe0 jpeg bytes";
  std::ofstream(tmp / "s/empty");
  const LoadedSeries l = load_study(scan_studies(tmp.str()), "");
  EXPECT_EQ(l.volume.size[2], 4);
  for (int k = 0; k < 4; ++k) expect_slice(l.volume, k, w, static_cast<std::size_t>(k));
}

TEST(MessySeries, MissingSliceIsReportedWithWhere) {
  TempDir tmp;
  SeriesSpec spec;
  spec.slices = 8;
  const auto w = write_series(tmp / "s", spec);
  fs::remove(w.files[3]);
  const LoadedSeries l = load_study(scan_studies(tmp.str()), "");
  EXPECT_EQ(l.volume.size[2], 7);
  std::string msg;
  ASSERT_TRUE(has(l.warnings, warn::missing_slices, &msg));
  EXPECT_NE(msg.find(fs::path(w.files[2]).filename().string()), std::string::npos) << msg;
  EXPECT_NE(msg.find(fs::path(w.files[4]).filename().string()), std::string::npos) << msg;
  EXPECT_NEAR(l.volume.spacing[2], spec.spacing_z, 1e-6);  // median, not stretched by the gap
  EXPECT_NEAR(l.volume.slice_positions[3] - l.volume.slice_positions[2], 2 * spec.spacing_z, 1e-6);
  expect_slice(l.volume, 3, w, 4);
}

TEST(MessySeries, DuplicateKeepsOneSlice) {
  TempDir tmp;
  SeriesSpec spec;
  spec.slices = 5;
  const auto w = write_series(tmp / "s", spec);
  fs::copy_file(w.files[2], tmp / "s/copy-of-3");
  const LoadedSeries l = load_study(scan_studies(tmp.str()), "");
  EXPECT_EQ(l.volume.size[2], 5);
  EXPECT_TRUE(has(l.warnings, warn::duplicate_position));
  for (int k = 0; k < 5; ++k) expect_slice(l.volume, k, w, static_cast<std::size_t>(k));
}

TEST(MessySeries, TruncatedSliceIsSkippedAndTheGapReported) {
  TempDir tmp;
  SeriesSpec spec;
  spec.slices = 6;
  spec.rows = spec.columns = 64;
  const auto w = write_series(tmp / "s", spec);
  const auto size = fs::file_size(w.files[2]);
  fs::resize_file(w.files[2], size - 3000);  // cut inside the pixel data
  const LoadedSeries l = load_study(scan_studies(tmp.str()), "");
  EXPECT_EQ(l.volume.size[2], 5);
  std::string msg;
  ASSERT_TRUE(has(l.warnings, warn::skipped_file, &msg));
  EXPECT_NE(msg.find(w.files[2]), std::string::npos) << msg;
  EXPECT_TRUE(has(l.warnings, warn::missing_slices));
  expect_slice(l.volume, 2, w, 3);
  EXPECT_NEAR(l.volume.slice_positions[2] - l.volume.slice_positions[1], 2 * spec.spacing_z, 1e-6);
}

TEST(MessySeries, TruncatedCompressedSliceIsSkipped) {
  for (const auto ts : {TransferSyntax::jpeg_lossless_sv1, TransferSyntax::jpeg_ls_lossless, TransferSyntax::rle}) {
    TempDir tmp;
    SeriesSpec spec;
    spec.slices = 5;
    spec.rows = spec.columns = 64;
    spec.ts = ts;
    const auto w = write_series(tmp / "s", spec);
    fs::resize_file(w.files[1], fs::file_size(w.files[1]) / 2);  // cut inside the compressed stream
    const LoadedSeries l = load_study(scan_studies(tmp.str()), "");
    EXPECT_EQ(l.volume.size[2], 4) << transfer_syntax_uid(ts);
    std::string msg;
    EXPECT_TRUE(has(l.warnings, warn::skipped_file, &msg)) << transfer_syntax_uid(ts);
    EXPECT_NE(msg.find(w.files[1]), std::string::npos) << msg;
    expect_slice(l.volume, 1, w, 2);
  }
}

TEST(MessySeries, CorruptCompressedStreamNeverCrashes) {
  TempDir tmp;
  SeriesSpec spec;
  spec.slices = 4;
  spec.rows = spec.columns = 64;
  spec.ts = TransferSyntax::jpeg_lossless_sv1;
  const auto w = write_series(tmp / "s", spec);
  {
    // Overwrite the middle of the compressed data with garbage, keeping the file length.
    std::fstream f(w.files[2], std::ios::in | std::ios::out | std::ios::binary);
    const auto size = static_cast<std::streamoff>(fs::file_size(w.files[2]));
    f.seekp(size * 2 / 3);
    const std::string junk(200, '\xff');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  // Either the decoder notices (slice skipped, named) or it yields a slice; it must not crash or hang.
  const LoadedSeries l = load_study(scan_studies(tmp.str()), "");
  EXPECT_GE(l.volume.size[2], 3);
  if (l.volume.size[2] == 3) EXPECT_TRUE(has(l.warnings, warn::skipped_file));
}

TEST(MessySeries, HeaderOnlyTruncationIsASkippedFileNotACrash) {
  TempDir tmp;
  SeriesSpec spec;
  spec.slices = 4;
  const auto w = write_series(tmp / "s", spec);
  fs::resize_file(w.files[1], 200);  // preamble and a few bytes: nothing parseable
  const StudyIndex index = scan_studies(tmp.str());
  const LoadedSeries l = load_study(index, "");
  EXPECT_EQ(l.volume.size[2], 3);
  EXPECT_TRUE(has(index.warnings, warn::skipped_file) || has(l.warnings, warn::skipped_file));
}

namespace {
class WrittenCodec : public ::testing::TestWithParam<TransferSyntax> {};
}  // namespace

TEST_P(WrittenCodec, RoundTripsExactly) {
  TempDir tmp;
  SeriesSpec spec;
  spec.slices = 3;
  spec.ts = GetParam();
  const auto w = write_series(tmp / "s", spec);
  const StudyIndex index = scan_studies(tmp.str());
  ASSERT_EQ(index.studies.at(0).series.at(0).transfer_syntaxes.size(), 1u);
  EXPECT_EQ(index.studies[0].series[0].transfer_syntaxes[0], transfer_syntax_uid(GetParam()));
  const LoadedSeries l = load_study(index, "");
  for (int k = 0; k < 3; ++k) expect_slice(l.volume, k, w, static_cast<std::size_t>(k));
}

INSTANTIATE_TEST_SUITE_P(All, WrittenCodec,
                         ::testing::Values(TransferSyntax::explicit_little, TransferSyntax::implicit_little,
                                           TransferSyntax::explicit_big, TransferSyntax::deflated,
                                           TransferSyntax::jpeg_lossless_sv1, TransferSyntax::jpeg_ls_lossless,
                                           TransferSyntax::rle));

TEST(MessySeries, SignedTwelveBitAndScaledValues) {
  TempDir tmp;
  SeriesSpec spec;
  spec.slices = 3;
  spec.is_signed = true;
  spec.bits_stored = 12;
  spec.intercept = 0.0;
  spec.ts = TransferSyntax::jpeg_lossless_sv1;
  const auto w = write_series(tmp / "signed", spec);
  const LoadedSeries l = load_study(scan_studies(tmp / "signed"), "");
  for (int k = 0; k < 3; ++k) expect_slice(l.volume, k, w, static_cast<std::size_t>(k));

  SeriesSpec scaled;
  scaled.slices = 2;
  scaled.slope = 0.5;
  scaled.intercept = -1024.0;
  const auto ws = write_series(tmp / "scaled", scaled);
  const LoadedSeries ls = load_study(scan_studies(tmp / "scaled"), "");
  for (int k = 0; k < 2; ++k) expect_slice(ls.volume, k, ws, static_cast<std::size_t>(k));
}

TEST(MessySeries, ThreadCountDoesNotChangeTheResult) {
  TempDir tmp;
  SeriesSpec spec;
  spec.slices = 12;
  spec.ts = TransferSyntax::jpeg_lossless_sv1;
  write_series(tmp / "s", spec);
  const StudyIndex index = scan_studies(tmp.str());
  LoadOptions one, many;
  one.threads = 1;
  many.threads = 4;
  const auto a = load_study(index, "", one);
  const auto b = load_study(index, "", many);
  EXPECT_EQ(a.volume.hu, b.volume.hu);
  EXPECT_EQ(a.slice_files, b.slice_files);
}

TEST(MessySeries, SeveralStudiesNeedAChoice) {
  TempDir tmp;
  SeriesSpec spec;
  spec.slices = 2;
  const auto a = write_series(tmp / "a", spec);
  write_series(tmp / "b", spec);
  const StudyIndex index = scan_studies(tmp.str());
  EXPECT_THROW(load_study(index, ""), UsageError);
  EXPECT_EQ(load_study(index, a.study_uid).volume.size[2], 2);
  EXPECT_THROW(load_study(index, "9.9.9"), InputError);
}

TEST(MessySeries, AnotherSeriesCanBeNamed) {
  TempDir tmp;
  SeriesSpec big, small;
  big.slices = 5;
  const auto wb = write_series(tmp / "big", big);
  small.study_uid = wb.study_uid;
  small.slices = 3;
  small.seed = 9;
  const auto ws = write_series(tmp / "small", small);
  const StudyIndex index = scan_studies(tmp.str());
  EXPECT_EQ(load_study(index, "").volume.size[2], 5);  // the selected one: most slices
  const LoadedSeries l = load_study(index, "", {}, ws.series_uid);
  ASSERT_EQ(l.volume.size[2], 3);
  expect_slice(l.volume, 0, ws, 0);
  EXPECT_THROW(load_study(index, "", {}, "1.2.3.4"), InputError);
}

TEST(MessySeries, WrongBitsStoredIsWarned) {
  // A header that says 12 bits while the values use more (bright metal): the standard says ignore the
  // extra bits, so the value wraps; cspine follows the standard but says so.
  TempDir tmp;
  SeriesSpec spec;
  spec.slices = 2;
  spec.rows = spec.columns = 16;
  const auto w = write_series(tmp / "s", spec);
  for (const auto& f : w.files) {
    DcmFileFormat file;
    ASSERT_TRUE(file.loadFile(f.c_str()).good());
    DcmDataset* d = file.getDataset();
    d->putAndInsertUint16(DCM_BitsStored, 12);
    d->putAndInsertUint16(DCM_HighBit, 11);
    const Uint16* px = nullptr;
    ASSERT_TRUE(d->findAndGetUint16Array(DCM_PixelData, px).good());
    std::vector<Uint16> values(px, px + 16 * 16);
    values[0] = 5024;  // 4000 HU of metal, needs 13 bits
    d->putAndInsertUint16Array(DCM_PixelData, values.data(), static_cast<unsigned long>(values.size()));
    ASSERT_TRUE(file.saveFile(f.c_str(), EXS_LittleEndianExplicit).good());
  }
  const LoadedSeries l = load_study(scan_studies(tmp.str()), "");
  std::string msg;
  ASSERT_TRUE(has(l.warnings, warn::high_bits_set, &msg));
  EXPECT_NE(msg.find("BitsStored=12"), std::string::npos) << msg;
  EXPECT_EQ(l.volume.slice(0)[0], (5024 & 0xFFF) - 1024);  // masked, per the standard
  for (std::size_t i = 1; i < w.hu[0].size(); ++i) ASSERT_EQ(l.volume.slice(0)[i], w.hu[0][i]) << i;
}

namespace {
// Centroid (i, j) of the pixels above 500 HU in slice k.
std::array<double, 2> bright_centroid(const Volume& v, int k) {
  double si = 0, sj = 0, n = 0;
  for (int j = 0; j < v.size[1]; ++j)
    for (int i = 0; i < v.size[0]; ++i) {
      const double w = v.at(i, j, k) > 0 ? v.at(i, j, k) + 1000.0 : 0.0;
      si += w * i;
      sj += w * j;
      n += w;
    }
  return {si / n, sj / n};
}
}  // namespace

TEST(MessySeries, GantryTiltIsCorrectedSoPatientPositionsAreExact) {
  // Slices tilted 20 degrees about x while the table moves along z, through a rod parallel to z at
  // x = 0, y = -10 mm. After correction every slice must place the rod at its true patient position.
  TempDir tmp;
  const double t = 20.0 * 3.14159265358979 / 180.0, table_step = 2.0;
  const std::array<double, 3> r{1, 0, 0}, c{0, std::cos(t), -std::sin(t)};
  const std::string study = make_uid(), series = make_uid();
  for (int k = 0; k < 10; ++k) {
    CtSliceSpec s;
    s.study_uid = study;
    s.series_uid = series;
    s.rows = s.columns = 64;
    s.pixel_spacing = {1.0, 1.0};
    s.orientation = {r[0], r[1], r[2], c[0], c[1], c[2]};
    s.position = {-32.0, -32.0, table_step * k};
    s.instance_number = k + 1;
    std::vector<int16_t> hu(64 * 64);
    for (int j = 0; j < 64; ++j)
      for (int i = 0; i < 64; ++i) {
        const double x = s.position[0] + i * r[0] + j * c[0], y = s.position[1] + i * r[1] + j * c[1];
        // Partial volume: a smooth profile so the centroid is sub-pixel accurate.
        const double dist = std::hypot(x - 0.0, y + 10.0);
        hu[static_cast<std::size_t>(j * 64 + i)] = static_cast<int16_t>(dist < 2.0 ? 1000 : dist < 3.0 ? 1000 * (3.0 - dist) : 0);
      }
    write_ct_slice(tmp / ("s" + std::to_string(k)), s, hu);
  }
  const StudyIndex index = scan_studies(tmp.str());
  auto worst_error = [&](bool correct) {
    LoadOptions lo;
    lo.correct_tilt = correct;
    const LoadedSeries l = load_study(index, "", lo);
    EXPECT_NEAR(l.geometry.tilt_degrees, 20.0, 1e-3);
    std::string msg;
    EXPECT_TRUE(has(l.warnings, warn::gantry_tilt, &msg));
    EXPECT_NE(msg.find(correct ? "corrected by shifting" : "not corrected"), std::string::npos) << msg;
    double worst = 0;
    for (int k = 0; k < l.volume.size[2]; ++k) {
      const auto ij = bright_centroid(l.volume, k);
      const auto p = l.volume.voxel_to_lps(ij[0], ij[1], k);
      worst = std::max(worst, std::hypot(p[0] - 0.0, p[1] + 10.0));
    }
    return worst;
  };
  EXPECT_LT(worst_error(true), 0.25);  // mm
  EXPECT_GT(worst_error(false), 5.0);  // the uncorrected grid is off by k * step * sin(t) * cos(t)
}

TEST(MessySeries, GarbageAfterTheDicmMagicNeverCrashes) {
  // Files that pass the magic-number check but hold random bytes, and real slices cut at every length
  // from a few bytes to the whole header: each is read or skipped with a message, never a crash or hang.
  TempDir tmp;
  std::mt19937 rng(11);
  for (int f = 0; f < 40; ++f) {
    std::string bytes(128, '\0');
    bytes += "DICM";
    const int n = 8 + static_cast<int>(rng() % 2000);
    for (int i = 0; i < n; ++i) bytes += static_cast<char>(rng() & 0xff);
    std::ofstream(tmp / ("junk" + std::to_string(f)), std::ios::binary) << bytes;
  }
  SeriesSpec spec;
  spec.slices = 1;
  const auto w = write_series(tmp / "src", spec);
  const auto full = fs::file_size(w.files[0]);
  for (std::uintmax_t cut = 140; cut < full; cut += 97) {
    const auto dst = tmp / ("cut" + std::to_string(cut));
    fs::copy_file(w.files[0], dst);
    fs::resize_file(dst, cut);
  }
  fs::remove_all(tmp / "src");
  try {
    const StudyIndex index = scan_studies(tmp.str());
    EXPECT_GE(index.skipped_files, 40u);  // at least the random files are reported as unreadable
    EXPECT_EQ(index.skipped_files + index.dicom_files, index.files_seen);
    // Whatever parsed must still load or be refused cleanly.
    for (const auto& st : index.studies) {
      try {
        load_study(index, st.study_uid);
      } catch (const Error&) {
      }
    }
  } catch (const NoDicomError& e) {
    EXPECT_NE(std::string(e.what()).find("could not be read"), std::string::npos) << e.what();
  }
}
