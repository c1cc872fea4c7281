// Hostile input through the real binary (issue 14): text that is not UTF-8 in headers and file names, a claimed
// matrix far larger than the data, two runs on one output, a journal whose header is unreadable.
#include <gtest/gtest.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/fixtures.h"

using namespace cspine;
using namespace cspine::test;
using nlohmann::json;

namespace {

int run_cli(const std::string& args, std::string* out = nullptr, std::string* err = nullptr) {
  std::string o;
  return run_command(q(CSPINE_BINARY) + " " + args, out ? out : &o, err);
}

SeriesSpec small(int slices, TransferSyntax ts = TransferSyntax::explicit_little) { return small_series(slices, ts); }

}  // namespace

TEST(HostileCli, InspectJsonWithLatin1HeaderAndFileName) {
  TempDir tmp;
  const auto w = write_series(tmp / "s", small(3));
  for (const auto& f : w.files)
    edit_dicom_file(f, [](DcmDataset& d) {
      d.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 100");
      d.putAndInsertString(DCM_SeriesDescription, "HWS Wirbels\xE4ule");
    });
  // A broken DICOM file whose name is Latin-1: it is skipped with a warning that names it.
  std::ofstream(tmp / "s/Wirbels\xE4ule.dcm", std::ios::binary) << std::string(128, '\0') << "DICM" << "\x02";
  std::string out, err;
  ASSERT_EQ(run_cli("inspect --json " + q(tmp.str()), &out, &err), 0) << err;
  const json j = json::parse(out);  // valid UTF-8 JSON
  EXPECT_NE(out.find("HWS Wirbels\xC3\xA4ule"), std::string::npos) << out;
  EXPECT_NE(out.find("Wirbels\\\\xE4ule.dcm"), std::string::npos) << out;  // the file name, escaped
  EXPECT_TRUE(j.is_object());
}

TEST(HostileCli, HugeClaimedMatrixExitsWithUnusableSeriesNamingTheFile) {
  for (const auto ts : {TransferSyntax::explicit_little, TransferSyntax::jpeg2000_lossless}) {
    TempDir tmp;
    const auto w = write_series(tmp / "s", small(2, ts));
    for (const auto& f : w.files)
      edit_dicom_file(f, [](DcmDataset& d) {
        d.putAndInsertUint16(DCM_Rows, 32768);
        d.putAndInsertUint16(DCM_Columns, 32768);
      });
    std::string err;
    EXPECT_EQ(run_cli("convert " + q(tmp.str()) + " -o " + q(tmp / "out.nii"), nullptr, &err), 5) << err;
    EXPECT_NE(err.find(w.files[0]), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(tmp / "out.nii"));
  }
}

TEST(HostileCli, ZeroPixelSpacingExitsWithUnusableSeries) {
  TempDir tmp;
  const auto w = write_series(tmp / "s", small(3));
  for (const auto& f : w.files) edit_dicom_file(f, [](DcmDataset& d) { d.putAndInsertString(DCM_PixelSpacing, "0\\0"); });
  std::string err;
  EXPECT_EQ(run_cli("convert " + q(tmp.str()) + " -o " + q(tmp / "out.nii"), nullptr, &err), 5) << err;
  EXPECT_NE(err.find("PixelSpacing"), std::string::npos) << err;
}

#ifdef CSPINE_WITH_TORCH
namespace {
std::string tiny() {
  const std::string m = std::string(CSPINE_SOURCE_DIR) + "/models/test/";
  return " --seg-model " + q(m + "tiny-seg.pt") + " --cls-model " + q(m + "tiny-cls.pt") + " --threads 1 ";
}
}  // namespace

TEST(HostileCli, SecondRunOnTheSameOutputIsRefused) {
  TempDir tmp;
  write_series(tmp / "in/s", small(12));
  const std::string out = tmp / "sub.csv";
  {
    // Another run holds the output's lock (as a running cspine predict does).
    const int fd = ::open((out + ".lock").c_str(), O_RDWR | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
    ASSERT_EQ(::write(fd, "4242\n", 5), 5);
    std::string err;
    EXPECT_EQ(run_cli("predict " + q(tmp / "in") + " -o " + q(out) + tiny(), nullptr, &err), 6) << err;
    EXPECT_NE(err.find("another cspine run (process 4242)"), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(out));
    EXPECT_FALSE(fs::exists(out + ".progress.jsonl"));
    ::close(fd);
  }
  std::string err;
  EXPECT_EQ(run_cli("predict " + q(tmp / "in") + " -o " + q(out) + tiny(), nullptr, &err), 0) << err;
  EXPECT_TRUE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".lock"));  // released and removed at the end
}

TEST(HostileCli, ResumeRefusesAJournalWhoseHeaderIsUnreadable) {
  TempDir tmp;
  write_series(tmp / "in/s", small(12));
  const std::string out = tmp / "sub.csv";
  std::ofstream(out + ".progress.jsonl") << "{\"cspine_progr\n{\"study_uid\": \"1.2.3\", \"status\": \"ok\"}\n";
  std::string err;
  EXPECT_EQ(run_cli("predict " + q(tmp / "in") + " -o " + q(out) + tiny() + " --resume", nullptr, &err), 2) << err;
  EXPECT_NE(err.find("line 1 is unreadable"), std::string::npos) << err;
}

TEST(HostileCli, BrokenLatin1NamedFileNeverStopsTheBatch) {
  TempDir tmp;
  write_series(tmp / "in/a", small(12));
  write_series(tmp / "in/b", small(12, TransferSyntax::jpeg_lossless_sv1));
  std::ofstream(tmp / "in/a/Wirbels\xE4ule.dcm", std::ios::binary) << std::string(128, '\0') << "DICM" << "\x02";
  std::string err;
  EXPECT_EQ(run_cli("predict " + q(tmp / "in") + " -o " + q(tmp / "sub.csv") + " --report " + q(tmp / "r.json") + tiny(),
                    nullptr, &err),
            0)
      << err;
  std::ifstream r(tmp / "r.json");
  const json report = json::parse(r);
  ASSERT_EQ(report["studies"].size(), 2u);
  std::ostringstream all;
  all << report;
  EXPECT_NE(all.str().find("Wirbels\\\\xE4ule.dcm"), std::string::npos);
}
#endif
