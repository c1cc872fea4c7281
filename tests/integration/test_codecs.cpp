// Every transfer syntax in the real samples decodes; lossless ones equal the uncompressed reference pixel
// for pixel, lossy ones stay close; broken files are refused with the file named.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "cspine/error.h"
#include "support/fixtures.h"

using namespace cspine;
using namespace cspine::test;

namespace {

std::string ts_dir() { return samples_dir() + "/transfer-syntaxes"; }
std::string ts_file(const std::string& suffix) { return ts_dir() + "/CTImage.dcm" + suffix; }

std::vector<int16_t> decode(const std::string& path, SliceHeader* header = nullptr) {
  const auto headers = read_slice_headers(path);
  EXPECT_EQ(headers.size(), 1u) << path;
  if (header) *header = headers.at(0);
  return decode_slice_hu(headers.at(0));
}

struct Diff {
  double mean_abs = 0;
  int max_abs = 0;
  double correlation = 0;  // Pearson: a wrong decode (shifted, byte-swapped, noise) falls far below 1
};
Diff compare(const std::vector<int16_t>& a, const std::vector<int16_t>& b) {
  Diff d;
  EXPECT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const int e = std::abs(int(a[i]) - int(b[i]));
    d.mean_abs += e;
    d.max_abs = std::max(d.max_abs, e);
  }
  d.mean_abs /= static_cast<double>(std::max<std::size_t>(1, a.size()));
  const std::size_t n = std::min(a.size(), b.size());
  double ma = 0, mb = 0;
  for (std::size_t i = 0; i < n; ++i) {
    ma += a[i];
    mb += b[i];
  }
  ma /= static_cast<double>(n);
  mb /= static_cast<double>(n);
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < n; ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  d.correlation = (saa > 0 && sbb > 0) ? sab / std::sqrt(saa * sbb) : 0.0;
  return d;
}

class LosslessTransferSyntax : public ::testing::TestWithParam<const char*> {};

}  // namespace

TEST_P(LosslessTransferSyntax, EqualsUncompressedPixelForPixel) {
  CSPINE_REQUIRE_SAMPLES();
  const auto reference = decode(ts_file(""));
  SliceHeader h;
  const auto decoded = decode(ts_file(GetParam()), &h);
  const Diff d = compare(reference, decoded);
  EXPECT_EQ(d.max_abs, 0) << GetParam() << " (" << transfer_syntax_name(h.transfer_syntax_uid) << ")";
}

INSTANTIATE_TEST_SUITE_P(
    CTImage, LosslessTransferSyntax,
    ::testing::Values("_LittleEndianImplicitTransferSyntax_1.2.840.10008.1.2.dcm",
                      "_LittleEndianExplicitTransferSyntax_1.2.840.10008.1.2.1.dcm",
                      "_BigEndianExplicitTransferSyntax_1.2.840.10008.1.2.2.dcm",
                      "_DeflatedExplicitVRLittleEndianTransferSyntax_1.2.840.10008.1.2.1.99.dcm",
                      "_JPEGProcess14TransferSyntax_1.2.840.10008.1.2.4.57.dcm",
                      "_JPEGProcess14SV1TransferSyntax_1.2.840.10008.1.2.4.70.dcm",
                      "_JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80.dcm",
                      "_RLELosslessTransferSyntax_1.2.840.10008.1.2.5.dcm",
                      "_JPEG2000LosslessOnlyTransferSyntax_1.2.840.10008.1.2.4.90.dcm"));

TEST(Codecs, UncompressedReferenceLooksLikeCt) {
  CSPINE_REQUIRE_SAMPLES();
  const auto ref = decode(ts_file(""));
  const auto [lo, hi] = std::minmax_element(ref.begin(), ref.end());
  EXPECT_GE(*lo, -3024);  // outside the reconstruction circle the scanner stored -2000 (-3024 HU)
  EXPECT_GT(*hi, 500);    // there is bone
  const auto air = std::count_if(ref.begin(), ref.end(), [](int16_t v) { return v < -900; });
  EXPECT_GT(air, 10000);
}

namespace {
class LossyTransferSyntax : public ::testing::TestWithParam<std::pair<const char*, double>> {};
}  // namespace

TEST_P(LossyTransferSyntax, CloseToUncompressed) {
  CSPINE_REQUIRE_SAMPLES();
  const auto reference = decode(ts_file(""));
  const auto decoded = decode(ts_file(GetParam().first));
  const Diff d = compare(reference, decoded);
  EXPECT_LT(d.mean_abs, GetParam().second) << GetParam().first << " max " << d.max_abs;
  EXPECT_GT(d.correlation, 0.99) << GetParam().first;
  EXPECT_GT(d.mean_abs + d.max_abs, 0.0) << "a lossy file decoding exactly is suspicious: " << GetParam().first;
}

// Thresholds: mean absolute HU error. The 8-bit baseline file quantises HU in steps of 32.
INSTANTIATE_TEST_SUITE_P(
    CTImage, LossyTransferSyntax,
    ::testing::Values(std::make_pair("_JPEGProcess1TransferSyntax_1.2.840.10008.1.2.4.50.dcm", 40.0),
                      std::make_pair("_JPEGProcess2_4TransferSyntax_1.2.840.10008.1.2.4.51.dcm", 25.0),
                      std::make_pair("_JPEGProcess6_8TransferSyntax_1.2.840.10008.1.2.4.53.dcm", 25.0),
                      std::make_pair("_JPEGProcess10_12TransferSyntax_1.2.840.10008.1.2.4.55.dcm", 25.0),
                      std::make_pair("_JPEGLSLossyTransferSyntax_1.2.840.10008.1.2.4.81.dcm", 10.0),
                      std::make_pair("_JPEG2000TransferSyntax_1.2.840.10008.1.2.4.91.dcm", 25.0)));

namespace {
class Wg04 : public ::testing::TestWithParam<std::tuple<const char*, const char*, bool>> {};
}  // namespace

TEST_P(Wg04, MatchesReference) {
  CSPINE_REQUIRE_SAMPLES();
  const auto [codec, image, lossless] = GetParam();
  const std::string dir = samples_dir() + "/wg04/";
  SliceHeader ref_header, got_header;
  const auto ref_headers = read_slice_headers(dir + "REF/" + image + "_UNC");
  const auto got_headers = read_slice_headers(dir + codec + "/" + image + "_" + codec);
  // A sentinel for padding shows which pixels the reference marks as padding.
  constexpr int16_t kSentinel = -32000;
  const auto ref = decode_slice_hu(ref_headers.at(0), kSentinel);
  const auto got = decode_slice_hu(got_headers.at(0), kSentinel);
  if (lossless) {
    EXPECT_EQ(compare(ref, got).max_abs, 0) << codec << " " << image;
    return;
  }
  // Lossy codecs move padding pixels (-2000 stored in CT1) off the exact padding value, so compare only
  // pixels that are not padding in the reference.
  std::vector<int16_t> a, b;
  for (std::size_t i = 0; i < ref.size(); ++i)
    if (ref[i] != kSentinel) {
      a.push_back(ref[i]);
      b.push_back(got[i] == kSentinel ? int16_t(-3024) : got[i]);
    }
  EXPECT_GT(a.size(), ref.size() / 2);
  const Diff d = compare(a, b);
  // CT1_J2KI is compressed about 37:1, hence the loose mean bound; the correlation shows the decode is right.
  EXPECT_LT(d.mean_abs, 40.0) << codec << " " << image;
  EXPECT_GT(d.correlation, 0.99) << codec << " " << image;
  EXPECT_GT(d.max_abs, 0) << "a lossy file decoding exactly is suspicious";
}

INSTANTIATE_TEST_SUITE_P(
    NemaWg04, Wg04,
    ::testing::Combine(::testing::Values("J2KR", "JLSL", "JPLL", "RLE"), ::testing::Values("CT1", "CT2"),
                       ::testing::Values(true)));
INSTANTIATE_TEST_SUITE_P(
    NemaWg04Lossy, Wg04,
    ::testing::Combine(::testing::Values("J2KI", "JLSN"), ::testing::Values("CT1", "CT2"), ::testing::Values(false)));

TEST(Codecs, FragmentedJpegWithoutOffsetTableDecodesBothFrames) {
  CSPINE_REQUIRE_SAMPLES();
  const std::string path = ts_dir() + "/CT0012.fragmented_no_bot_jpeg_baseline.51.dcm";
  const auto headers = read_slice_headers(path);
  ASSERT_EQ(headers.size(), 2u);  // enhanced CT, two frames
  ASSERT_TRUE(headers[0].position && headers[1].position);
  EXPECT_NEAR((*headers[1].position)[2] - (*headers[0].position)[2], 10.0, 1e-6);  // per-frame positions
  ASSERT_TRUE(headers[0].pixel_spacing);
  EXPECT_NEAR((*headers[0].pixel_spacing)[0], 0.388672, 1e-6);
  for (const auto& h : headers) {
    const auto hu = decode_slice_hu(h);
    const auto [lo, hi] = std::minmax_element(hu.begin(), hu.end());
    EXPECT_GE(*lo, -1024);
    EXPECT_GT(*hi, 200) << "frame " << h.frame;
    const double mean = std::accumulate(hu.begin(), hu.end(), 0.0) / static_cast<double>(hu.size());
    EXPECT_GT(mean, -1000.0);
    EXPECT_LT(mean, 500.0);
  }
  // The two frames differ (they are different slices, not the first frame twice).
  EXPECT_GT(compare(decode_slice_hu(headers[0]), decode_slice_hu(headers[1])).mean_abs, 1.0);
}

TEST(Codecs, FileWithoutPixelDataIsRefusedByName) {
  CSPINE_REQUIRE_SAMPLES();
  TempDir tmp;
  fs::copy_file(ts_dir() + "/no-pixel-data.dcm", tmp / "no-pixel-data.dcm");
  const StudyIndex index = scan_studies(tmp.str());
  ASSERT_EQ(index.studies.size(), 1u);
  EXPECT_EQ(index.studies[0].selected_series, -1);
  try {
    load_study(index, "");
    FAIL() << "expected SeriesError";
  } catch (const SeriesError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("no-pixel-data.dcm"), std::string::npos) << m;
    EXPECT_NE(m.find("no pixel data"), std::string::npos) << m;
  }
  EXPECT_THROW(decode_slice_hu(read_slice_headers(tmp / "no-pixel-data.dcm").at(0)), SeriesError);
}

TEST(Codecs, FileWithoutPixelSpacingOrPositionIsRefusedByName) {
  CSPINE_REQUIRE_SAMPLES();
  TempDir tmp;
  fs::copy_file(ts_dir() + "/no-pixel-spacing.dcm", tmp / "no-pixel-spacing.dcm");
  const StudyIndex index = scan_studies(tmp.str());
  ASSERT_EQ(index.studies.size(), 1u);
  const auto& s = index.studies[0].series.at(0);
  EXPECT_NE(s.eligibility.find("no-pixel-spacing.dcm' has no PixelSpacing"), std::string::npos) << s.eligibility;
  EXPECT_NE(s.eligibility.find("ImagePositionPatient"), std::string::npos) << s.eligibility;
  EXPECT_THROW(load_study(index, ""), SeriesError);
}

TEST(Codecs, GeGantryTiltSeriesReportsTiltAndUnevenSpacing) {
  CSPINE_REQUIRE_SAMPLES();
  const StudyIndex index = scan_studies(samples_dir() + "/gantry-tilt-ge");
  ASSERT_EQ(index.studies.size(), 1u);
  LoadOptions lo;
  lo.padding_hu = -1024;
  const LoadedSeries loaded = load_study(index, "", lo);
  EXPECT_EQ(loaded.volume.size[2], 28);
  EXPECT_EQ(loaded.volume.size[0], 512);
  EXPECT_NEAR(loaded.volume.spacing[0], 0.4882812, 1e-6);
  EXPECT_NEAR(loaded.geometry.tilt_degrees, 18.5, 0.1);
  EXPECT_NEAR(loaded.geometry.min_gap, 1.08, 0.02);
  EXPECT_NEAR(loaded.geometry.max_gap, 7.0, 0.02);
  auto has = [&](const char* code) {
    return std::any_of(loaded.warnings.begin(), loaded.warnings.end(), [&](auto& w) { return w.code == code; });
  };
  EXPECT_TRUE(has(warn::gantry_tilt));
  EXPECT_TRUE(has(warn::uneven_spacing));
  // Signed pixels with PixelPaddingValue -1500: padding must become air, never -1500.
  const auto& hu = loaded.volume.hu;
  EXPECT_EQ(std::count(hu.begin(), hu.end(), int16_t(-1500)), 0);
  LoadOptions sentinel;
  sentinel.padding_hu = -3000;
  const LoadedSeries marked = load_study(index, "", sentinel);
  EXPECT_GT(std::count(marked.volume.hu.begin(), marked.volume.hu.end(), int16_t(-3000)), 1000);
  // Slices are in position order: positions strictly increase.
  for (std::size_t k = 1; k < loaded.volume.slice_positions.size(); ++k)
    EXPECT_GT(loaded.volume.slice_positions[k], loaded.volume.slice_positions[k - 1]);
}
