// The real binary on real and synthetic inputs: exit codes, JSON shape, and agreement with dcm2niix.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <set>

#include "support/fixtures.h"

using namespace cspine;
using namespace cspine::test;
using nlohmann::json;

namespace {

std::string bin() { return std::string(CSPINE_BINARY); }

int run_cspine(const std::string& args, std::string* out = nullptr, std::string* err = nullptr) {
  return run_command(q(bin()) + " " + args, out, err);
}


}  // namespace

TEST(Cli, VersionAndInfo) {
  std::string out;
  EXPECT_EQ(run_cspine("--version", &out), 0);
  EXPECT_NE(out.find("cspine"), std::string::npos);
  EXPECT_EQ(run_cspine("info", &out), 0);
  EXPECT_NE(out.find("DCMTK"), std::string::npos);
#ifdef CSPINE_WITH_TORCH
  // The backend plugin loads and reports a version (not "unavailable").
  EXPECT_NE(out.find("LibTorch 1."), std::string::npos) << out;
  EXPECT_EQ(out.find("unavailable"), std::string::npos) << out;
#else
  EXPECT_NE(out.find("LibTorch backend unavailable"), std::string::npos) << out;
#endif
}

TEST(Cli, BrokenBackendPluginIsAClearError) {
  TempDir tmp;
  std::ofstream(tmp / "libcspine_torch.so") << "not a shared object";
  std::string out;
  EXPECT_EQ(run_command("CSPINE_TORCH_BACKEND=" + q(tmp / "libcspine_torch.so") + " " + q(bin()) + " info", &out), 0);
  EXPECT_NE(out.find("LibTorch backend unavailable: cannot load the model backend"), std::string::npos) << out;
}

// A cspine moved to a machine without DCMTK's data files must say so, not fail on the first tag it writes.
TEST(Cli, MissingDcmtkDictionaryIsAClearError) {
  TempDir tmp;
  std::string out, err;
  const int rc = run_command("DCMDICTPATH=" + q(tmp / "nowhere.dic") + " " + q(bin()) + " synth -o " + q(tmp / "d") +
                                 " -n 1 --matrix 64 --slices 16",
                             &out, &err);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("data dictionary"), std::string::npos) << err;
  EXPECT_NE(err.find("nowhere.dic"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(tmp / "d")) << "nothing is written before the check";
}

TEST(Cli, ExitCodeUsage) {
  EXPECT_EQ(run_cspine("inspect --no-such-flag x"), 2);
  EXPECT_EQ(run_cspine(""), 2);
  TempDir tmp;
  EXPECT_EQ(run_cspine("convert " + q(tmp.str()) + " -o " + q(tmp / "x.txt")), 2);  // wrong extension
}

TEST(Cli, ExitCodeInputNotFound) {
  std::string err;
  EXPECT_EQ(run_cspine("inspect /definitely/not/here", nullptr, &err), 3);
  EXPECT_NE(err.find("/definitely/not/here"), std::string::npos) << err;
}

TEST(Cli, ExitCodeNoDicom) {
  TempDir tmp;
  std::ofstream(tmp / "a.txt") << "text";
  std::string err;
  EXPECT_EQ(run_cspine("inspect " + q(tmp.str()), nullptr, &err), 4);
  EXPECT_NE(err.find("no DICOM"), std::string::npos) << err;
}

TEST(Cli, ExitCodeUnusableSeries) {
  CSPINE_REQUIRE_SAMPLES();
  TempDir tmp;
  fs::copy_file(samples_dir() + "/transfer-syntaxes/no-pixel-data.dcm", tmp / "no-pixel-data.dcm");
  std::string err;
  EXPECT_EQ(run_cspine("convert " + q(tmp.str()) + " -o " + q(tmp / "out.nii"), nullptr, &err), 5);
  EXPECT_NE(err.find("no-pixel-data.dcm"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(tmp / "out.nii"));
}

TEST(Cli, ExitCodeOutputError) {
  TempDir tmp;
  SeriesSpec spec;
  spec.slices = 2;
  write_series(tmp / "s", spec);
  std::string err;
  EXPECT_EQ(run_cspine("convert " + q(tmp / "s") + " -o " + q(tmp / "missing/out.nii"), nullptr, &err), 6);
  EXPECT_NE(err.find("missing"), std::string::npos) << err;
}

TEST(Cli, InspectJsonDescribesEveryStudyAndSeries) {
  TempDir tmp;
  SeriesSpec a, b;
  a.slices = 4;
  a.ts = TransferSyntax::jpeg_lossless_sv1;
  b.slices = 3;
  b.head_first_numbering = true;
  const auto wa = write_series(tmp / "A", a);
  const auto wb = write_series(tmp / "B", b);
  std::string out;
  ASSERT_EQ(run_cspine("inspect --json " + q(tmp.str()), &out), 0);
  const json j = json::parse(out);
  ASSERT_EQ(j["studies"].size(), 2u);
  for (const auto& st : j["studies"]) {
    const bool is_a = st["study_uid"] == wa.study_uid;
    const auto& ser = st["series"][0];
    EXPECT_EQ(ser["series_uid"], is_a ? wa.series_uid : wb.series_uid);
    EXPECT_TRUE(ser["selected"].get<bool>());
    EXPECT_EQ(ser["slices"], is_a ? 4 : 3);
    EXPECT_EQ(ser["rows"], 32);
    EXPECT_EQ(ser["columns"], 32);
    EXPECT_NEAR(ser["spacing_mm"][0].get<double>(), 0.6, 1e-9);
    EXPECT_NEAR(ser["spacing_mm"][1].get<double>(), 0.7, 1e-9);
    EXPECT_NEAR(ser["spacing_mm"][2].get<double>(), 1.25, 1e-6);
    EXPECT_EQ(ser["transfer_syntaxes"][0], is_a ? "1.2.840.10008.1.2.4.70" : "1.2.840.10008.1.2.1");
    // Head-first numbering is recorded, not warned about.
    EXPECT_EQ(ser["numbering"], is_a ? "feet-first" : "head-first");
    EXPECT_TRUE(ser["warnings"].empty()) << ser["warnings"].dump();
  }
}

TEST(Cli, InspectRealSamplesListsEveryTransferSyntax) {
  CSPINE_REQUIRE_SAMPLES();
  std::string out;
  ASSERT_EQ(run_cspine("inspect --json " + q(samples_dir()), &out), 0);
  const json j = json::parse(out);
  std::set<std::string> xfers;
  for (const auto& st : j["studies"])
    for (const auto& s : st["series"])
      for (const auto& x : s["transfer_syntaxes"]) xfers.insert(x.get<std::string>());
  for (const char* uid : {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
                          "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                          "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90",
                          "1.2.840.10008.1.2.5"})
    EXPECT_TRUE(xfers.count(uid)) << uid;
}

TEST(Cli, ConvertAgreesWithDcm2niixOnSyntheticSeries) {
  if (!have_dcm2niix()) FAIL() << "dcm2niix is not installed (scripts/install-deps.sh installs it)";
  TempDir tmp;
  SeriesSpec spec;
  spec.rows = 48;
  spec.columns = 40;
  spec.slices = 12;
  spec.head_first_numbering = true;
  spec.origin = {-101.3, 47.9, -220.5};
  spec.spacing_z = 0.8;
  spec.pixel_spacing = {0.45, 0.35};
  const auto w = write_series(tmp / "s", spec, [](int k) { return "x" + std::to_string((k * 7) % 12); });
  ASSERT_EQ(run_cspine("convert " + q(tmp / "s") + " -o " + q(tmp / "ours.nii")), 0);
  const std::string ref_path = dcm2niix(tmp / "s", tmp / "ref");
  const Volume ours = read_nifti(tmp / "ours.nii");
  const Volume ref = read_nifti(ref_path);
  std::multiset<int> a(ours.size.begin(), ours.size.end()), b(ref.size.begin(), ref.size.end());
  EXPECT_EQ(a, b);
  const Agreement g = agree(ours, ref);
  EXPECT_EQ(g.outside, 0u) << "voxel grids differ by more than 0.01 voxel somewhere";
  EXPECT_EQ(g.compared, ours.voxel_count());
  EXPECT_EQ(g.mismatched, 0u);
  // Both read through ITK (LPS); the same world point must be a corner of both grids within 1e-3 mm.
  const auto p = ours.voxel_to_lps(0, 0, 0);
  double best = 1e9;
  for (int i : {0, ref.size[0] - 1})
    for (int j : {0, ref.size[1] - 1})
      for (int k : {0, ref.size[2] - 1}) {
        const auto r = ref.voxel_to_lps(i, j, k);
        best = std::min(best, std::sqrt(std::pow(r[0] - p[0], 2) + std::pow(r[1] - p[1], 2) + std::pow(r[2] - p[2], 2)));
      }
  EXPECT_LT(best, 1e-3);
  EXPECT_NEAR(ours.origin[0], spec.origin[0], 1e-3);  // our origin is the lowest slice's ImagePositionPatient
}

namespace {
class RealSlice : public ::testing::TestWithParam<std::string> {};
}  // namespace

// cspine's decoders (DCMTK, GDCM) against dcm2niix's own, on real scanner files in every lossless codec.
TEST_P(RealSlice, ConvertAgreesWithDcm2niix) {
  CSPINE_REQUIRE_SAMPLES();
  if (!have_dcm2niix()) FAIL() << "dcm2niix is not installed (scripts/install-deps.sh installs it)";
  TempDir tmp;
  fs::create_directories(tmp / "in");
  const fs::path src = samples_dir() + "/" + GetParam();
  fs::copy_file(src, tmp / ("in/" + src.filename().string()));
  ASSERT_EQ(run_cspine("convert " + q(tmp / "in") + " -o " + q(tmp / "ours.nii.gz")), 0);
  const Volume ours = read_nifti(tmp / "ours.nii.gz");
  const Volume ref = read_nifti(dcm2niix(tmp / "in", tmp / "ref"));
  // dcm2niix keeps PixelPaddingValue (-2000 stored, -3024 HU) as a value; cspine turns it into air.
  const Agreement g = agree(ours, ref, int16_t(-3024));
  EXPECT_EQ(g.outside, 0u);
  EXPECT_GT(g.compared, ours.voxel_count() / 2);
  EXPECT_EQ(g.mismatched, 0u) << GetParam();
}

// Only the files this dcm2niix build can read: it refuses multi-fragment JPEG, JPEG-LS and deflated data,
// which cspine decodes (those are checked against the uncompressed reference in test_codecs.cpp).
INSTANTIATE_TEST_SUITE_P(
    Samples, RealSlice,
    ::testing::Values("wg04/REF/CT1_UNC", "wg04/REF/CT2_UNC", "wg04/RLE/CT1_RLE", "wg04/RLE/CT2_RLE",
                      "transfer-syntaxes/CTImage.dcm",
                      "transfer-syntaxes/CTImage.dcm_BigEndianExplicitTransferSyntax_1.2.840.10008.1.2.2.dcm",
                      "transfer-syntaxes/CTImage.dcm_LittleEndianImplicitTransferSyntax_1.2.840.10008.1.2.dcm",
                      "transfer-syntaxes/CTImage.dcm_JPEGProcess14TransferSyntax_1.2.840.10008.1.2.4.57.dcm",
                      "transfer-syntaxes/CTImage.dcm_JPEGProcess14SV1TransferSyntax_1.2.840.10008.1.2.4.70.dcm",
                      "transfer-syntaxes/CTImage.dcm_RLELosslessTransferSyntax_1.2.840.10008.1.2.5.dcm",
                      "transfer-syntaxes/CTImage.dcm_JPEG2000LosslessOnlyTransferSyntax_1.2.840.10008.1.2.4.90.dcm"));

TEST(Cli, ConvertMemoryIsBoundedByTheVolume) {
  // Decoding goes straight into the volume and ITK writes from it: the peak above what indexing the same
  // folder needs must stay close to one volume (no second copy, no per-file buffers piling up).
  TempDir tmp;
  SeriesSpec spec;
  spec.rows = spec.columns = 256;
  spec.slices = 160;
  write_series(tmp / "s", spec);
  const long volume_kb = 256L * 256 * 160 * 2 / 1024;
  int rc_inspect = -1, rc_convert = -1;
  const long base = run_peak_rss_kb({bin(), "-q", "inspect", tmp / "s"}, &rc_inspect);
  const long peak = run_peak_rss_kb({bin(), "-q", "convert", tmp / "s", "-o", tmp / "out.nii"}, &rc_convert);
  ASSERT_EQ(rc_inspect, 0);
  ASSERT_EQ(rc_convert, 0);
  EXPECT_LT(peak - base, volume_kb * 5 / 4 + 4096) << "inspect " << base << " KiB, convert " << peak
                                                   << " KiB, volume " << volume_kb << " KiB";
  EXPECT_GT(peak - base, volume_kb / 2) << "the volume itself must show up in the peak";
}
