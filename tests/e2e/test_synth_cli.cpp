// `cspine synth` through the real binary: options, exit codes, and agreement of what it writes with
// dcm2niix, an independent DICOM reader.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cspine/volume.h"
#include "support/fixtures.h"

using namespace cspine;
using namespace cspine::test;

namespace {
int synth(const std::string& args, std::string* err = nullptr) {
  std::string out;
  return run_command(q(CSPINE_BINARY) + " synth " + args, &out, err);
}
}  // namespace

TEST(SynthCli, BadOptionsAreUsageErrors) {
  TempDir tmp;
  std::string err;
  EXPECT_EQ(synth("-o " + q(tmp / "d") + " -n 1 --difficulty impossible", &err), 2);
  EXPECT_NE(err.find("--difficulty"), std::string::npos) << err;
  EXPECT_EQ(synth("-o " + q(tmp / "d") + " -n 1 --slices many", &err), 2);
  EXPECT_NE(err.find("--slices"), std::string::npos) << err;
  EXPECT_EQ(synth("-o " + q(tmp / "d") + " -n 1 --transfer-syntax jpeg-xl", &err), 2);
  EXPECT_EQ(synth("-o " + q(tmp / "d") + " -n 0", &err), 2);
  EXPECT_EQ(synth("-o " + q(tmp / "d") + " -n 1 --matrix 32", &err), 2);
  EXPECT_FALSE(fs::exists(tmp / "d/train.csv"));
}

TEST(SynthCli, AnExistingDataSetIsAnOutputErrorNamingTheFolder) {
  TempDir tmp;
  const std::string args = "-o " + q(tmp / "d") + " -n 1 --matrix 64 --slices 20 --seed 4";
  ASSERT_EQ(synth(args), 0);
  std::string err;
  EXPECT_EQ(synth(args, &err), 6);
  EXPECT_NE(err.find(tmp / "d"), std::string::npos) << err;
  EXPECT_NE(err.find("--overwrite"), std::string::npos) << err;
  EXPECT_EQ(synth(args + " --overwrite"), 0);
  std::ofstream(tmp / "file") << "x";
  EXPECT_EQ(synth("-o " + q(tmp / "file") + " -n 1 --matrix 64 --slices 20", &err), 6);
}

// dcm2niix reads the generated studies to the same voxels on the same grid (except pixels outside the
// reconstruction circle stored as padding, which dcm2niix keeps at -3024 HU and cspine makes air).
TEST(SynthCli, Dcm2niixReadsTheSameVolumes) {
  if (!have_dcm2niix()) FAIL() << "dcm2niix is not installed (scripts/install-deps.sh installs it)";
  TempDir tmp;
  for (const std::string ts : {"explicit", "implicit", "jpeg-lossless", "rle", "j2k"}) {
    const std::string d = tmp / ts;
    ASSERT_EQ(synth("-o " + q(d) + " -n 2 --matrix 96 --slices 40 --seed 8 --test-fraction 0 --transfer-syntax " + ts),
              0);
    for (const auto& e : fs::directory_iterator(d + "/train_images")) {
      const std::string study = e.path().string();
      const std::string ours_path = tmp / (ts + "-" + e.path().filename().string() + ".nii");
      ASSERT_EQ(run_command(q(CSPINE_BINARY) + " convert " + q(study) + " -o " + q(ours_path)), 0);
      const Volume ours = read_nifti(ours_path);
      const Volume ref = read_nifti(dcm2niix(study, tmp / (ts + "-ref-" + e.path().filename().string())));
      const Agreement a = agree(ours, ref, int16_t{-3024});
      EXPECT_EQ(a.outside, 0u) << ts << ": grids differ";
      EXPECT_GT(a.compared, ours.voxel_count() / 2) << ts;
      EXPECT_EQ(a.mismatched, 0u) << ts << " " << study;
    }
  }
}

// evaluate reads what synth writes: its test labels against its sample submission (the 0.5 baseline).
TEST(SynthCli, EvaluateScoresTheSampleSubmissionAgainstTheTestLabels) {
  TempDir tmp;
  const std::string d = tmp / "d";
  ASSERT_EQ(synth("-o " + q(d) + " -n 6 --matrix 64 --slices 24 --seed 3 --test-fraction 0.5"), 0);
  std::string out, err;
  const int rc =
      run_command(q(CSPINE_BINARY) + " evaluate --predictions " + q(d + "/sample_submission.csv") + " --labels " +
                      q(d + "/test_labels.csv") + " --bootstrap 50 --json " + q(tmp / "e.json"),
                  &out, &err);
  ASSERT_EQ(rc, 0) << err;
  const auto j = nlohmann::json::parse(std::ifstream(tmp / "e.json"));
  // Constant 0.5: every study's weighted log loss is ln 2, whatever its labels.
  EXPECT_NEAR(j["competition_score"]["value"].get<double>(), std::log(2.0), 1e-12);
  EXPECT_EQ(j["studies"].get<int>(), 3);
}

// Ctrl-C in the middle of a run: exit 130, every finished study complete and in the tables, nothing half
// written left behind.
TEST(SynthCli, InterruptKeepsFinishedStudiesAndRemovesTheOneInProgress) {
  TempDir tmp;
  const std::string d = tmp / "d";
  std::string out;
  run_command("(" + q(CSPINE_BINARY) + " -q synth -o " + q(d) +
                  " -n 400 --matrix 128 --slices 96 --test-fraction 0 --seed 2 & pid=$!; sleep 1.5; kill -INT $pid; "
                  "wait $pid; echo rc=$?)",
              &out);
  ASSERT_NE(out.find("rc=130"), std::string::npos) << out;
  int studies = 0;
  for (const auto& e : fs::directory_iterator(d + "/train_images")) {
    EXPECT_NE(e.path().filename().string().rfind(".partial-", 0), 0u) << "half-written study left: " << e.path();
    int files = 0;
    for (const auto& f : fs::directory_iterator(e.path())) files += f.is_regular_file();
    EXPECT_EQ(files, 96) << e.path();
    ++studies;
  }
  EXPECT_GT(studies, 0);
  EXPECT_LT(studies, 400);
  std::ifstream csv(d + "/train.csv");
  int rows = -1;  // header
  for (std::string line; std::getline(csv, line);) ++rows;
  EXPECT_EQ(rows, studies) << "train.csv lists exactly the finished studies";
}
