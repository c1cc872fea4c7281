// `cspine predict` end to end through the real binary with the tiny test models: the CSV's exact rows, the
// report and masks, a batch with bad studies in it, --test-csv, interrupts and --resume, and the errors.
// Agreement with the Python reference pipeline is tests/python/test_predict_parity.py.
#include <gtest/gtest.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>

#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "support/fixtures.h"

#ifdef CSPINE_WITH_TORCH

using namespace cspine;
using namespace cspine::test;
using nlohmann::json;

namespace {

std::string models() {
  return std::string(CSPINE_SOURCE_DIR) + "/models/test/";
}

std::string tiny() {
  return " --seg-model " + q(models() + "tiny-seg.pt") + " --cls-model " + q(models() + "tiny-cls.pt") +
         " --threads 1 ";
}

int run_cli(const std::string& args, std::string* err = nullptr) {
  std::string out;
  return run_command(q(CSPINE_BINARY) + " " + args, &out, err);
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// Copies a study folder, giving every file a new StudyInstanceUID and applying `edit` to each dataset.
void copy_study(const fs::path& from, const fs::path& to, const std::string& uid,
                const std::function<void(DcmDataset*)>& edit = nullptr) {
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(from)) {
    DcmFileFormat file;
    ASSERT_TRUE(file.loadFile(e.path().c_str()).good()) << e.path();
    DcmDataset* d = file.getDataset();
    d->putAndInsertString(DCM_StudyInstanceUID, uid.c_str());
    d->putAndInsertString(DCM_SeriesInstanceUID, (uid + ".1").c_str());
    if (edit) edit(d);
    ASSERT_TRUE(file.saveFile((to / e.path().filename()).c_str(), EXS_LittleEndianExplicit).good());
  }
}

// Three small synthetic studies, written once for the suite.
struct Data {
  TempDir dir;
  std::string images;
  std::vector<std::string> uids;  // sorted
  Data() {
    EXPECT_EQ(run_cli("-q synth -o " + q(dir / "d") + " -n 3 --matrix 64 --slices 40 --test-fraction 0 --seed 8"), 0);
    images = dir / "d/train_images";
    for (const auto& e : fs::directory_iterator(images)) uids.push_back(e.path().filename().string());
    std::sort(uids.begin(), uids.end());
  }
};

Data& data() {
  static Data d;
  return d;
}

const std::regex kRow(R"(^(.+)_(C[1-7]|patient_overall),[01]\.[0-9]{6}$)");
const char* kSuffix[8] = {"C1", "C2", "C3", "C4", "C5", "C6", "C7", "patient_overall"};

// Checks the Kaggle CSV holds exactly 8 rows per study of `uids`, in that order, C1..C7 then patient_overall.
void expect_rows_for(const std::string& csv, const std::vector<std::string>& uids) {
  const auto lines = lines_of(csv);
  ASSERT_EQ(lines.size(), 1 + 8 * uids.size()) << csv;
  EXPECT_EQ(lines[0], "row_id,fractured");
  for (std::size_t s = 0; s < uids.size(); ++s)
    for (int k = 0; k < 8; ++k) {
      const std::string& l = lines[1 + 8 * s + static_cast<std::size_t>(k)];
      std::smatch m;
      ASSERT_TRUE(std::regex_match(l, m, kRow)) << l;
      EXPECT_EQ(m[1].str(), uids[s]);
      EXPECT_EQ(m[2].str(), kSuffix[k]);
    }
}

std::map<std::string, double> csv_values(const std::string& csv) {
  std::map<std::string, double> out;
  for (const auto& l : lines_of(csv)) {
    const auto c = l.find(',');
    if (l.rfind("row_id", 0) == 0 || c == std::string::npos) continue;
    out[l.substr(0, c)] = std::stod(l.substr(c + 1));
  }
  return out;
}

}  // namespace

TEST(PredictCli, WritesSubmissionReportWideCsvAndMasks) {
  Data& d = data();
  TempDir out;
  std::string err;
  ASSERT_EQ(run_cli("predict " + q(d.images) + " -o " + q(out / "sub.csv") + tiny() + " --report " + q(out / "r.json") +
                        " --wide-csv " + q(out / "wide.csv") + " --save-masks " + q(out / "masks"),
                    &err),
            0)
      << err;
  const std::string csv = read_file(out.path() / "sub.csv");
  expect_rows_for(csv, d.uids);
  const auto values = csv_values(csv);

  const json r = json::parse(read_file(out.path() / "r.json"));
  ASSERT_EQ(r["studies"].size(), 3u);
  // The run's settings as resolved from the defaults (auto): the CPU's, or CUDA's with a CUDA backend.
  const bool cuda = r["device"].get<std::string>().rfind("cuda", 0) == 0;
  EXPECT_EQ(r["batch_size"], cuda ? 128 : 32);
  EXPECT_EQ(r["preprocess"], cuda ? "device" : "host");
  EXPECT_EQ(r["prefetch"], cuda ? 2 : 1);
  EXPECT_TRUE(r["complete"].get<bool>());
  EXPECT_TRUE(r["models"]["classifier"]["contract"].is_object());
  for (const auto& s : r["studies"]) {
    const std::string uid = s["study_uid"];
    EXPECT_EQ(s["status"], "ok");
    double keep = 1.0;
    for (int k = 0; k < 7; ++k) {
      const json& v = s["vertebrae"][kSuffix[k]];
      const double p = v["probability"];
      keep *= 1.0 - p;
      EXPECT_NEAR(values.at(uid + "_" + kSuffix[k]), p, 5e-7);
      if (v["predicted"].get<bool>()) {
        EXPECT_TRUE(v["fallback"].is_null());
        EXPECT_EQ(v["slices_used"], 8);
        const int key = v["key_slice"]["index"];
        EXPECT_GE(key, v["index_range"][0].get<int>());
        EXPECT_LE(key, v["index_range"][1].get<int>());
        EXPECT_EQ(v["attention"].size(), 8u);
      } else {
        EXPECT_FALSE(v["fallback"].is_null()) << "a vertebra given the prior says why";
      }
    }
    EXPECT_NEAR(s["patient_overall"].get<double>(), 1.0 - keep, 1e-12) << "noisy-or";
    EXPECT_NEAR(values.at(uid + "_patient_overall"), s["patient_overall"].get<double>(), 5e-7);
    for (const char* stage : {"load", "wait", "segment", "cleanup", "classify", "masks", "total"})
      EXPECT_GE(s["seconds"][stage].get<double>(), 0.0) << stage;
    // The mask lands on the CT grid.
    const fs::path mask = out.path() / "masks" / (uid + ".nii.gz");
    ASSERT_TRUE(fs::exists(mask)) << mask;
    const Volume m = read_nifti(mask.string());
    EXPECT_EQ(m.size, (std::array<int, 3>{s["size"][0], s["size"][1], s["size"][2]}));
  }
  const auto wide = lines_of(read_file(out.path() / "wide.csv"));
  ASSERT_EQ(wide.size(), 4u);
  EXPECT_EQ(wide[0], "StudyInstanceUID,patient_overall,C1,C2,C3,C4,C5,C6,C7");
  EXPECT_EQ(wide[1].substr(0, wide[1].find(',')), d.uids[0]);
}

TEST(PredictCli, OneBadStudyNeverStopsTheBatch) {
  Data& d = data();
  TempDir in, out;
  // Two good studies, a study whose images have no position (cannot make a volume), a non-CT (MR) series,
  // an empty folder and a stray text file.
  for (int s = 0; s < 2; ++s) fs::copy(fs::path(d.images) / d.uids[static_cast<std::size_t>(s)], in.path() / d.uids[static_cast<std::size_t>(s)]);
  const std::string broken = "2.25.9000001", mr = "2.25.9000002", absent = "2.25.9000003";
  copy_study(fs::path(d.images) / d.uids[2], in.path() / "broken", broken,
             [](DcmDataset* x) { x->findAndDeleteElement(DCM_ImagePositionPatient); });
  copy_study(fs::path(d.images) / d.uids[2], in.path() / "mr", mr, [](DcmDataset* x) {
    x->putAndInsertString(DCM_Modality, "MR");
    x->putAndInsertString(DCM_SOPClassUID, UID_MRImageStorage);
  });
  fs::create_directories(in.path() / "empty");
  std::ofstream(in.path() / "notes.txt") << "not DICOM\n";

  std::string err;
  ASSERT_EQ(run_cli("predict " + q(in.str()) + " -o " + q(out / "sub.csv") + tiny() + " --report " + q(out / "r.json"), &err),
            7)
      << err;
  EXPECT_NE(err.find(broken), std::string::npos) << "the log names the failed study: " << err;
  EXPECT_NE(err.find(mr), std::string::npos) << err;
  expect_rows_for(read_file(out.path() / "sub.csv"), {d.uids[0], d.uids[1]});
  const json r = json::parse(read_file(out.path() / "r.json"));
  std::map<std::string, json> by_uid;
  for (const auto& s : r["studies"]) by_uid[s["study_uid"]] = s;
  ASSERT_EQ(by_uid.size(), 4u);
  for (const auto& uid : {broken, mr}) {
    EXPECT_EQ(by_uid[uid]["status"], "failed");
    EXPECT_EQ(by_uid[uid]["error"]["exit_code"], 5) << by_uid[uid].dump();
    EXPECT_FALSE(by_uid[uid]["error"]["message"].get<std::string>().empty());
  }

  // With --test-csv: exactly its rows in its order; a failed or absent study gets the contract's prior.
  std::ofstream(in.path() / "test.csv") << "row_id,StudyInstanceUID,prediction_type\n"
                                        << absent << "_C1," << absent << ",C1\n"
                                        << d.uids[1] << "_C3," << d.uids[1] << ",C3\n"
                                        << broken << "_patient_overall," << broken << ",patient_overall\n"
                                        << d.uids[1] << "_patient_overall," << d.uids[1] << ",patient_overall\n";
  ASSERT_EQ(run_cli("predict " + q(in.str()) + " -o " + q(out / "t.csv") + tiny() + " --test-csv " +
                        q(in / "test.csv") + " --report " + q(out / "t.json"),
                    &err),
            7)
      << err;
  EXPECT_NE(err.find(absent + " is named in"), std::string::npos) << err;
  const auto lines = lines_of(read_file(out.path() / "t.csv"));
  ASSERT_EQ(lines.size(), 5u);
  const json t = json::parse(read_file(out.path() / "t.json"));
  const auto prior = t["models"]["classifier"]["contract"]["output"]["prior"].get<std::vector<double>>();
  double keep = 1.0;
  for (double p : prior) keep *= 1.0 - p;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s_C1,%.6f", absent.c_str(), prior[0]);
  EXPECT_EQ(lines[1], buf);
  EXPECT_EQ(lines[2].substr(0, lines[2].find(',')), d.uids[1] + "_C3");
  std::snprintf(buf, sizeof buf, "%s_patient_overall,%.6f", broken.c_str(), 1.0 - keep);
  EXPECT_EQ(lines[3], buf);
  EXPECT_EQ(lines[4].substr(0, lines[4].find(',')), d.uids[1] + "_patient_overall");
  std::set<std::string> statuses;
  for (const auto& s : t["studies"]) statuses.insert(s["study_uid"].get<std::string>() + ":" + s["status"].get<std::string>());
  EXPECT_EQ(statuses, (std::set<std::string>{absent + ":missing", broken + ":failed", d.uids[1] + ":ok"}))
      << "studies not in test.csv are not scored";
}

TEST(PredictCli, ResumeAfterAKilledRunGivesTheSameCsv) {
  Data& d = data();
  TempDir out;
  std::string err;
  // Loading each study in turn (no loading thread) is the reference.
  ASSERT_EQ(run_cli("-q predict " + q(d.images) + " -o " + q(out / "full.csv") + tiny() + " --prefetch 0", &err), 0) << err;
  const std::string full = read_file(out.path() / "full.csv");

  // SIGKILL as soon as the first study is in the journal (header + 1 line): nothing gets a chance to clean up.
  const std::string journal = out / "part.csv.progress.jsonl";
  const std::string script = q(CSPINE_BINARY) + " -q predict " + q(d.images) + " -o " + q(out / "part.csv") + tiny() +
                             " & pid=$!; for i in $(seq 1 3000); do [ -f " + q(journal) + " ] && [ $(wc -l < " +
                             q(journal) + ") -ge 2 ] && break; sleep 0.01; done; kill -9 $pid; wait $pid; echo $?";
  std::string status;
  run_command("sh -c " + q(script), &status);
  ASSERT_EQ(status, "137\n") << "the run should have been killed";
  const auto kept = lines_of(read_file(journal));
  ASSERT_GE(kept.size(), 2u);
  ASSERT_LT(kept.size(), 4u) << "killed after the last study: nothing left to resume";

  ASSERT_EQ(run_cli("predict " + q(d.images) + " -o " + q(out / "part.csv") + tiny() + " --resume", &err), 0) << err;
  EXPECT_NE(err.find("already scored"), std::string::npos) << err;
  EXPECT_EQ(read_file(out.path() / "part.csv"), full);

  // Loading ahead in a thread of its own changes nothing in the results: 2 studies ahead at normal priority,
  // and `auto` on the CPU (1 ahead, a background thread; also what the killed run above used).
  ASSERT_EQ(run_cli("-q predict " + q(d.images) + " -o " + q(out / "pf.csv") + tiny() + " --prefetch 2", &err), 0) << err;
  EXPECT_EQ(read_file(out.path() / "pf.csv"), full);
  ASSERT_EQ(run_cli("-v predict " + q(d.images) + " -o " + q(out / "auto.csv") + tiny() + " --prefetch auto", &err), 0) << err;
  EXPECT_EQ(read_file(out.path() / "auto.csv"), full);
  EXPECT_NE(err.find("loading up to 1 studies ahead at nice 19"), std::string::npos) << err;

  // Without --resume the journal starts over (every study is scored again), with the same result.
  ASSERT_EQ(run_cli("-q predict " + q(d.images) + " -o " + q(out / "part.csv") + tiny()), 0);
  EXPECT_EQ(lines_of(read_file(journal)).size(), 4u);
  EXPECT_EQ(read_file(out.path() / "part.csv"), full);

  // --resume with other models refuses to mix results.
  EXPECT_EQ(run_cli("predict " + q(d.images) + " -o " + q(out / "part.csv") + " --seg-model " +
                        q(models() + "tiny-seg.pt") + " --cls-model " + q(std::string(CSPINE_SOURCE_DIR) + "/models/cls.pt") +
                        " --resume",
                    &err),
            2);
  EXPECT_NE(err.find("other models"), std::string::npos) << err;
}

TEST(PredictCli, SigtermSavesFinishedStudiesAndExits130) {
  Data& d = data();
  for (const std::string variant : {"", " --prefetch 0"}) {  // with the loading thread (auto) and without
    TempDir out;
    const std::string journal = out / "sub.csv.progress.jsonl";
    const std::string script = q(CSPINE_BINARY) + " -q predict " + q(d.images) + " -o " + q(out / "sub.csv") + tiny() +
                               variant + " --report " + q(out / "r.json") + " & pid=$!; for i in $(seq 1 3000); do [ -f " +
                               q(journal) + " ] && [ $(wc -l < " + q(journal) +
                               ") -ge 2 ] && break; sleep 0.01; done; kill -TERM $pid; wait $pid; echo $?";
    std::string status;
    run_command("sh -c " + q(script), &status);
    if (status == "0\n") {
      std::cerr << "note: the run" << variant << " finished before the signal arrived\n";
      continue;
    }
    ASSERT_EQ(status, "130\n") << variant;
    const auto lines = lines_of(read_file(out.path() / "sub.csv"));
    const std::size_t finished = lines_of(read_file(journal)).size() - 1;
    ASSERT_GE(finished, 1u);
    EXPECT_EQ(lines.size(), 1 + 8 * finished) << "every finished study is in the CSV" << variant;
    const json r = json::parse(read_file(out.path() / "r.json"));
    EXPECT_FALSE(r["complete"].get<bool>());
    EXPECT_EQ(r["studies"].size(), finished);
  }
}

TEST(PredictCli, ProgressBarOnATerminalLogLinesOtherwise) {
  Data& d = data();
  TempDir out;
  if (run_command("command -v script >/dev/null") != 0) GTEST_SKIP() << "util-linux 'script' is not installed";
  // `script` gives the command a pseudo-terminal: the bar is redrawn with carriage returns.
  std::string tty;
  const std::string cmd = q(CSPINE_BINARY) + " predict " + q(d.images) + " -o " + q(out / "a.csv") + tiny();
  ASSERT_EQ(run_command("script -qec " + q(cmd) + " /dev/null", &tty), 0) << tty;
  EXPECT_NE(tty.find("\r"), std::string::npos) << tty;
  EXPECT_NE(tty.find("3/3 studies"), std::string::npos) << tty;
  EXPECT_NE(tty.find("ETA"), std::string::npos) << tty;
  // Not a terminal: one log line per study, no carriage returns.
  std::string err;
  ASSERT_EQ(run_cli("predict " + q(d.images) + " -o " + q(out / "b.csv") + tiny(), &err), 0) << err;
  EXPECT_EQ(err.find('\r'), std::string::npos);
  for (const auto& uid : d.uids) EXPECT_NE(err.find("] " + uid + ": patient "), std::string::npos) << err;
  EXPECT_NE(err.find("seconds per study:"), std::string::npos) << err;
}

TEST(PredictCli, ThousandSliceFullSizeStudyStaysUnderFourGigabytes) {
  // The memory bound the performance issue sets for the CPU: a 512 x 512 x 1000 study (a 500 MB volume) with the
  // default models. Measured 1.2 GB (1.4 GB with --save-masks) on the development VM.
  TempDir dir;
  ASSERT_EQ(run_cli("-q synth -o " + q(dir / "d") + " -n 1 --matrix 512 --slices 1000 --seed 4 --test-fraction 1"), 0);
  int rc = -1;
  const long kb = run_peak_rss_kb({CSPINE_BINARY, "-q", "predict", dir / "d/test_images", "-o", dir / "s.csv",
                                   "--report", dir / "r.json", "--save-masks", dir / "m"},
                                  &rc);
  ASSERT_EQ(rc, 0);
  EXPECT_LT(kb, 4L * 1024 * 1024) << "peak RSS " << kb / 1024 << " MB";
  const json r = json::parse(read_file(dir.path() / "r.json"));
  EXPECT_EQ(r["studies"][0]["size"][2], 1000);
  EXPECT_GT(r["peak_rss_mb"].get<double>(), 500.0) << "the report states the peak, which holds at least the volume";
  EXPECT_LT(r["peak_rss_mb"].get<double>(), 4096.0);
}

TEST(PredictCli, ErrorsHaveTheirExitCodes) {
  Data& d = data();
  TempDir out;
  std::string err;
  const std::string o = " -o " + q(out / "s.csv") + " --threads 1 ";
  const std::string seg = " --seg-model " + q(models() + "tiny-seg.pt");
  const std::string cls = " --cls-model " + q(models() + "tiny-cls.pt");
  struct Case {
    std::string args;
    int code;
    std::string expect;
  };
  std::ofstream(out / "bad-test.csv") << "row_id\nnot-a-row\n";
  const std::vector<Case> cases = {
      {q(d.images) + o + " --seg-model " + q(models() + "broken-wrong-output.pt") + cls, 9, "classes"},
      {q(d.images) + o + " --seg-model " + q(models() + "tiny-cls.pt") + cls, 9, "expected a segmentation model"},
      {q(d.images) + o + seg + " --cls-model " + q(models() + "broken-no-contract.pt"), 9, "no cspine.json"},
      {q(d.images) + o + seg + cls + " --device cuda", 2, "CUDA"},
      {q(d.images) + o + seg + cls + " --device cpu --fp16", 2, "--device cpu --fp16: half precision (fp16) needs a CUDA device"},
      {q(d.images) + o + seg + cls + " --device tpu", 2, "--device tpu: device 'tpu': expected auto, cpu"},
      {q(out / "absent") + o + seg + cls, 3, "absent"},
      {q(out.str()) + o + seg + cls, 4, ""},
      {q(d.images) + o + seg + cls + " --test-csv " + q(out / "bad-test.csv"), 8, "bad-test.csv:2"},
      {q(d.images) + " -o " + q(out / "no/such/dir/s.csv") + seg + cls, 6, "no/such/dir"},
      {q(d.images) + o + seg + cls + " --prefetch -1", 2, "--prefetch"},
      {q(d.images) + o + seg + cls + " --batch-size 0", 2, "--batch-size: '0' is not a number of slices"},
      {q(d.images) + o + seg + cls + " --batch-size 8x", 2, "--batch-size: '8x'"},
      {q(d.images) + o + seg + cls + " --preprocess gpu", 2, "expected auto, host or device"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(run_cli("predict " + c.args, &err), c.code) << c.args << "\n" << err;
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.args << "\n" << err;
  }
  // -q after the subcommand silences the progress lines.
  ASSERT_EQ(run_cli("predict " + q(d.images) + o + seg + cls + " -q", &err), 0);
  EXPECT_EQ(err, "");
}

#endif  // CSPINE_WITH_TORCH
