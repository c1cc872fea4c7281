// cspine synth: what it writes is readable without warnings, aligned through the headers, faithful to what
// was drawn, identical for a seed, and in the RSNA 2022 layout.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cspine/dicom.h"
#include "cspine/error.h"
#include "cspine/synth.h"
#include "cspine/volume.h"
#include "support/fixtures.h"

using namespace cspine;
using namespace cspine::test;

namespace {

SynthOptions small(const std::string& dir, int studies, uint64_t seed) {
  SynthOptions o;
  o.out_dir = dir;
  o.studies = studies;
  o.seed = seed;
  o.matrix = 128;
  o.slices = 96;
  o.test_fraction = 0;
  o.threads = 2;
  return o;
}

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) cells.push_back(cell);
    rows.push_back(cells);
  }
  return rows;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + v[i];
  return s;
}

std::string warnings_text(const Warnings& w) {
  std::string s;
  for (const auto& x : w) s += x.code + ": " + x.message + "\n";
  return s;
}

LoadedSeries load_one(const std::string& study_dir) {
  return load_study(scan_studies(study_dir), "");
}

// Bytes of every file under `dir`, keyed by relative path.
std::map<std::string, std::string> tree(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    files[fs::relative(e.path(), dir).string()] = ss.str();
  }
  return files;
}

}  // namespace

TEST(Synth, EveryTransferSyntaxLoadsWithoutWarningsAndLosslessOnesDecodeIdentically) {
  TempDir tmp;
  std::optional<Volume> reference;
  for (const std::string ts :
       {"explicit", "implicit", "big-endian", "deflated", "jpeg-lossless", "jpeg-ls", "rle", "j2k"}) {
    SynthOptions o = small(tmp / ts, 1, 7);
    o.slices = 40;
    o.matrix = 96;
    o.transfer_syntax = ts;
    o.fracture_rate = 1;
    const SynthSummary s = generate_dataset(o);
    ASSERT_EQ(s.studies.size(), 1u);
    const std::string dir = tmp / (ts + "/train_images/" + s.studies[0].study_uid);
    const auto headers = read_slice_headers(dir + "/1.dcm");
    ASSERT_EQ(headers.size(), 1u);
    EXPECT_EQ(headers[0].transfer_syntax_uid, transfer_syntax_uid(*parse_transfer_syntax(ts))) << ts;
    const LoadedSeries l = load_one(dir);
    EXPECT_TRUE(l.warnings.empty()) << ts << ":\n" << warnings_text(l.warnings);
    EXPECT_EQ(l.volume.size[2], 40);
    if (!reference) {
      reference = l.volume;
      continue;
    }
    const Agreement a = agree(l.volume, *reference);
    EXPECT_EQ(a.outside, 0u) << ts;
    EXPECT_EQ(a.mismatched, 0u) << ts << " decodes differently from explicit little endian";
  }
}

TEST(Synth, LabelledVoxelsAreBoneOnceAlignedThroughTheHeaders) {
  TempDir tmp;
  SynthOptions o = small(tmp / "d", 4, 21);
  o.transfer_syntax = "mix";
  const SynthSummary s = generate_dataset(o);
  for (const auto& st : s.studies) {
    const LoadedSeries l = load_one(tmp / ("d/train_images/" + st.study_uid));
    EXPECT_TRUE(l.warnings.empty()) << warnings_text(l.warnings);
    const Volume seg = read_nifti(tmp / ("d/segmentations/" + st.study_uid + ".nii"));
    long labelled = 0, bone = 0;
    std::set<int> labels;
    for (int k = 0; k < seg.size[2]; ++k)
      for (int j = 0; j < seg.size[1]; ++j)
        for (int i = 0; i < seg.size[0]; ++i) {
          const int label = seg.at(i, j, k);
          if (label == 0) continue;
          labels.insert(label);
          // Through the headers: label voxel -> patient position -> CT voxel.
          const auto idx = lps_to_index(l.volume, seg.voxel_to_lps(i, j, k));
          const int ci = static_cast<int>(std::lround(idx[0])), cj = static_cast<int>(std::lround(idx[1])),
                    ck = static_cast<int>(std::lround(idx[2]));
          ASSERT_TRUE(ci >= 0 && cj >= 0 && ck >= 0 && ci < l.volume.size[0] && cj < l.volume.size[1] &&
                      ck < l.volume.size[2]);
          ++labelled;
          if (l.volume.at(ci, cj, ck) > 150) ++bone;
        }
    ASSERT_GT(labelled, 1000);
    EXPECT_GE(static_cast<double>(bone) / labelled, 0.95) << st.study_uid;
    for (int v = 1; v <= 9; ++v) EXPECT_TRUE(labels.count(v)) << "label " << v << " missing in " << st.study_uid;
    EXPECT_LE(*labels.rbegin(), 19);
  }
}

// The same seed with and without fractures gives the same neck, so the difference image is exactly what the
// fractures changed: labels and boxes must agree with it.
namespace {
// Generates the same studies with and without fractures into tmp/with and tmp/without, checks labels, boxes
// and metadata against the difference image, and returns how many studies are labelled fractured.
// Every changed voxel is in a box, except on slices where a fracture touches fewer than 3 pixels (no box
// there) and for fractures too faint to label (fewer than 4 voxels): at most a few per slice.
void check_labels_against_difference(const TempDir& tmp, SynthOptions with, int* fractured_out) {
  SynthOptions without = with;
  without.out_dir = tmp / "without";
  with.out_dir = tmp / "with";
  with.fracture_rate = 1;
  without.fracture_rate = 0;
  const SynthSummary a = generate_dataset(with);
  const SynthSummary b = generate_dataset(without);
  const auto train = read_csv(tmp / "with/train.csv");
  const auto boxes = read_csv(tmp / "with/train_bounding_boxes.csv");
  ASSERT_EQ(join(train[0]), "StudyInstanceUID,patient_overall,C1,C2,C3,C4,C5,C6,C7");
  ASSERT_EQ(join(boxes[0]), "StudyInstanceUID,x,y,width,height,slice_number");
  int fractured_studies = 0;
  for (std::size_t s = 0; s < a.studies.size(); ++s) {
    const std::string uid = a.studies[s].study_uid;
    ASSERT_EQ(uid, b.studies[s].study_uid);
    const LoadedSeries fa = load_one(tmp / ("with/train_images/" + uid));
    const LoadedSeries fb = load_one(tmp / ("without/train_images/" + uid));
    const Volume seg = read_nifti(tmp / ("with/segmentations/" + uid + ".nii"));
    ASSERT_EQ(fa.volume.size, fb.volume.size);
    ASSERT_EQ(seg.size, fa.volume.size);
    EXPECT_LT(seg.direction[4], 0.0) << "rows are stored flipped, as in the competition's files";
    // slice_number (file name) of each volume slice.
    std::vector<int> slice_number;
    for (const auto& f : fa.slice_files) slice_number.push_back(std::stoi(fs::path(f).stem().string()));
    std::map<int, int> k_of;
    for (std::size_t k = 0; k < slice_number.size(); ++k) k_of[slice_number[k]] = static_cast<int>(k);

    std::vector<std::array<int, 5>> study_boxes;  // x, y, w, h, k
    for (std::size_t r = 1; r < boxes.size(); ++r)
      if (boxes[r][0] == uid)
        study_boxes.push_back({std::stoi(boxes[r][1]), std::stoi(boxes[r][2]), std::stoi(boxes[r][3]),
                               std::stoi(boxes[r][4]), k_of.at(std::stoi(boxes[r][5]))});
    std::vector<int> row;
    for (std::size_t r = 1; r < train.size(); ++r)
      if (train[r][0] == uid)
        for (std::size_t c = 1; c < train[r].size(); ++c) row.push_back(std::stoi(train[r][c]));
    ASSERT_EQ(row.size(), 8u) << uid;

    std::array<bool, 8> fractured_label{};
    for (int v = 1; v <= 7; ++v) fractured_label[static_cast<std::size_t>(v)] = row[static_cast<std::size_t>(v)] != 0;
    // The segmentation is stored in its own layout (rows flipped, like the competition's): go through
    // patient space.
    auto label_near = [&](const Volume& ct, int i, int j, int k) {
      std::array<bool, 8> near{};
      for (int dk = -1; dk <= 1; ++dk)
        for (int dj = -1; dj <= 1; ++dj)
          for (int di = -1; di <= 1; ++di) {
            const auto s_idx = lps_to_index(seg, ct.voxel_to_lps(i + di, j + dj, k + dk));
            const int si = static_cast<int>(std::lround(s_idx[0])), sj = static_cast<int>(std::lround(s_idx[1])),
                      sk = static_cast<int>(std::lround(s_idx[2]));
            if (si < 0 || sj < 0 || sk < 0 || si >= seg.size[0] || sj >= seg.size[1] || sk >= seg.size[2]) continue;
            const int label = seg.at(si, sj, sk);
            if (label >= 1 && label <= 7) near[static_cast<std::size_t>(label)] = true;
          }
      return near;
    };
    long changed = 0, changed_in_boxes = 0;
    std::map<int, int> unboxed_per_slice;
    std::array<long, 8> changed_in_label{};
    std::vector<long> changed_in_box(study_boxes.size(), 0);
    const Volume& va = fa.volume;
    for (int k = 0; k < va.size[2]; ++k)
      for (int j = 0; j < va.size[1]; ++j)
        for (int i = 0; i < va.size[0]; ++i) {
          if (std::abs(va.at(i, j, k) - fb.volume.at(i, j, k)) <= 110)
            continue;  // synth draws the line at 100 before rounding
          ++changed;
          // A change is the fracture of the vertebra it touches (within a voxel: edges blur); where it touches
          // a fractured and an intact one, it is the fractured one's.
          const auto near = label_near(va, i, j, k);
          bool any_fractured = false;
          for (int v = 1; v <= 7; ++v)
            any_fractured |= near[static_cast<std::size_t>(v)] && fractured_label[static_cast<std::size_t>(v)];
          for (int v = 1; v <= 7; ++v)
            if (near[static_cast<std::size_t>(v)] && fractured_label[static_cast<std::size_t>(v)] == any_fractured)
              ++changed_in_label[static_cast<std::size_t>(v)];
          bool in_box = false;
          for (std::size_t bi = 0; bi < study_boxes.size(); ++bi) {
            const auto& bx = study_boxes[bi];
            if (bx[4] == k && i >= bx[0] && i < bx[0] + bx[2] && j >= bx[1] && j < bx[1] + bx[3]) {
              in_box = true;
              ++changed_in_box[bi];
            }
          }
          if (in_box)
            ++changed_in_boxes;
          else
            ++unboxed_per_slice[k];
        }
    int any = 0;
    for (int v = 1; v <= 7; ++v) {
      const int label = row[static_cast<std::size_t>(v)];
      any |= label;
      if (label)
        EXPECT_GE(changed_in_label[static_cast<std::size_t>(v)], 4)
            << uid << " C" << v << " labelled fractured but unchanged";
      else
        EXPECT_LT(changed_in_label[static_cast<std::size_t>(v)], 4)
            << uid << " C" << v << " changed but labelled intact";
    }
    EXPECT_EQ(row[0], any) << "patient_overall must be the OR of C1-C7";
    if (any) {
      ++fractured_studies;
      ASSERT_FALSE(study_boxes.empty()) << uid;
      EXPECT_GT(changed_in_boxes, 0) << uid;
    } else {
      EXPECT_TRUE(study_boxes.empty());
    }
    for (const auto& [slice, n] : unboxed_per_slice)
      EXPECT_LE(n, 4) << uid << ": " << n << " changed voxels outside every box on slice " << slice;
    for (std::size_t bi = 0; bi < study_boxes.size(); ++bi)
      EXPECT_GE(changed_in_box[bi], 3) << uid << " box " << bi << " on slice " << study_boxes[bi][4]
                                       << " shows no change";
  }
  *fractured_out = fractured_studies;
  // Nothing but the fractures differs: acquisition, storage, numbering, noise and anatomy are the same, so no
  // cue outside the bone can tell a fractured study from an intact one.
  const auto ma = nlohmann::json::parse(std::ifstream(tmp / "with/synth.json"));
  const auto mb = nlohmann::json::parse(std::ifstream(tmp / "without/synth.json"));
  ASSERT_EQ(ma["studies"].size(), mb["studies"].size());
  for (std::size_t i = 0; i < ma["studies"].size(); ++i) {
    auto x = ma["studies"][i], y = mb["studies"][i];
    for (const char* key : {"fractured", "fractures", "boxes"}) {
      x.erase(key);
      y.erase(key);
    }
    EXPECT_EQ(x, y) << "study " << i << " differs beyond its fractures";
  }
  // Without fractures, every label is 0 and there are no boxes.
  for (const auto& r : read_csv(tmp / "without/train.csv"))
    if (r[0] != "StudyInstanceUID") EXPECT_EQ(join(r), r[0] + ",0,0,0,0,0,0,0,0");
  EXPECT_EQ(read_csv(tmp / "without/train_bounding_boxes.csv").size(), 1u);
}
}  // namespace

TEST(Synth, LabelsAndBoxesAgreeWithWhatTheFracturesChanged) {
  TempDir tmp;
  SynthOptions o = small("", 4, 33);
  o.difficulty = 0.3;
  int fractured = 0;
  check_labels_against_difference(tmp, o, &fractured);
  EXPECT_GE(fractured, 3);  // with --fracture-rate 1 at this size, nearly every drawn fracture is visible
}

// Hairline fractures on a coarse grid can leave no visible trace: those vertebrae must stay labelled intact.
TEST(Synth, FracturesThatDoNotShowAreNotLabelled) {
  TempDir tmp;
  SynthOptions o = small("", 4, 34);
  o.matrix = 64;
  o.slices = 48;
  o.difficulty = 1;
  int fractured = 0;
  check_labels_against_difference(tmp, o, &fractured);
  const auto manifest = nlohmann::json::parse(std::ifstream(tmp / "with/synth.json"));
  int invisible = 0;
  for (const auto& st : manifest["studies"])
    for (const auto& f : st["fractures"]) invisible += !f["visible"].get<bool>();
  EXPECT_GE(invisible, 1) << "this seed draws fractures too fine for a 64x64 grid";
}

TEST(Synth, SameSeedSameBytesWhateverTheThreadCount) {
  TempDir tmp;
  SynthOptions o = small(tmp / "one", 3, 99);
  o.matrix = 96;
  o.slices = 40;
  o.transfer_syntax = "mix";
  o.test_fraction = 0.34;
  o.preview = true;
  o.threads = 1;
  generate_dataset(o);
  o.out_dir = tmp / "two";
  o.threads = 2;
  generate_dataset(o);
  const auto one = tree(tmp / "one"), two = tree(tmp / "two");
  ASSERT_GT(one.size(), 3u * 40u);
  ASSERT_EQ(one.size(), two.size());
  for (const auto& [name, bytes] : one) {
    ASSERT_TRUE(two.count(name)) << name;
    EXPECT_TRUE(two.at(name) == bytes) << name << " differs between runs";
  }
  o.out_dir = tmp / "other";
  o.seed = 100;
  generate_dataset(o);
  const auto other = tree(tmp / "other");
  EXPECT_NE(other.begin()->first, one.begin()->first);  // another seed, other studies
}

TEST(Synth, KaggleLayoutNumberingAndTables) {
  TempDir tmp;
  SynthOptions o = small(tmp / "d", 6, 5);
  o.matrix = 64;
  o.slices = 32;
  o.test_fraction = 1.0 / 3;
  generate_dataset(o);
  const auto manifest = nlohmann::json::parse(std::ifstream(tmp / "d/synth.json"));
  std::vector<std::string> train_uids, test_uids;
  std::set<std::string> numberings;
  for (const auto& s : manifest["studies"]) {
    (s["split"] == "test" ? test_uids : train_uids).push_back(s["study_uid"]);
    numberings.insert(s["numbering"].get<std::string>());
    const std::string dir =
        tmp / ((s["split"] == "test" ? "d/test_images/" : "d/train_images/") + s["study_uid"].get<std::string>());
    // Files are named after their InstanceNumber, 1..N, and numbering runs from the head or the feet.
    double z_first = 0, z_last = 0;
    for (int n = 1; n <= 32; ++n) {
      const auto h = read_slice_headers(dir + "/" + std::to_string(n) + ".dcm");
      ASSERT_EQ(h.size(), 1u);
      EXPECT_EQ(h[0].instance_number.value_or(-1), n);
      EXPECT_EQ(h[0].modality, "CT");
      if (n == 1) z_first = (*h[0].position)[2];
      if (n == 32) z_last = (*h[0].position)[2];
    }
    EXPECT_EQ(s["numbering"] == "head-first", z_first > z_last) << dir;
    EXPECT_FALSE(fs::exists(dir + "/33.dcm"));
    EXPECT_EQ(fs::exists(tmp / ("d/segmentations/" + s["study_uid"].get<std::string>() + ".nii")),
              s["split"] == "train");
  }
  EXPECT_EQ(train_uids.size(), 4u);
  EXPECT_EQ(test_uids.size(), 2u);
  EXPECT_EQ(numberings.size(), 2u) << "this seed gives both head-first and feet-first studies";

  const auto train = read_csv(tmp / "d/train.csv");
  ASSERT_EQ(train.size(), 5u);
  for (std::size_t r = 1; r < train.size(); ++r) EXPECT_EQ(train[r][0], train_uids[r - 1]);
  const auto test = read_csv(tmp / "d/test.csv");
  ASSERT_EQ(join(test[0]), "row_id,StudyInstanceUID,prediction_type");
  ASSERT_EQ(test.size(), 1u + 2 * 8);
  const std::vector<std::string> types = {"C1", "C2", "C3", "C4", "C5", "C6", "C7", "patient_overall"};
  for (std::size_t r = 1; r < test.size(); ++r) {
    const std::string& uid = test_uids[(r - 1) / 8];
    const std::string& type = types[(r - 1) % 8];
    EXPECT_EQ(join(test[r]), uid + "_" + type + "," + uid + "," + type);
  }
  const auto sample = read_csv(tmp / "d/sample_submission.csv");
  ASSERT_EQ(join(sample[0]), "row_id,fractured");
  ASSERT_EQ(sample.size(), test.size());
  for (std::size_t r = 1; r < sample.size(); ++r) EXPECT_EQ(join(sample[r]), test[r][0] + ",0.5");
  const auto labels = read_csv(tmp / "d/test_labels.csv");
  ASSERT_EQ(join(labels[0]), join(train[0]));
  ASSERT_EQ(labels.size(), 3u);
  EXPECT_EQ(labels[1][0], test_uids[0]);
  EXPECT_EQ(join(read_csv(tmp / "d/test_bounding_boxes.csv")[0]), "StudyInstanceUID,x,y,width,height,slice_number");
}

TEST(Synth, RefusesToMixWithAnEarlierDataSetUnlessAskedToOverwrite) {
  TempDir tmp;
  SynthOptions o = small(tmp / "d", 1, 1);
  o.matrix = 64;
  o.slices = 24;
  generate_dataset(o);
  std::ofstream(tmp / "d/notes.txt") << "mine";
  EXPECT_THROW(generate_dataset(o), OutputError);
  o.overwrite = true;
  o.seed = 2;
  const SynthSummary s = generate_dataset(o);
  EXPECT_TRUE(fs::exists(tmp / ("d/train_images/" + s.studies[0].study_uid)));
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp / "d/train_images"), fs::directory_iterator{}), 1);
  EXPECT_TRUE(fs::exists(tmp / "d/notes.txt")) << "--overwrite removes only synth's own files";
}

// --inject adds defects on purpose; the loader must report exactly the warnings each one causes, and still
// choose the CT series.
TEST(Synth, InjectedDefectsCauseExactlyTheirWarnings) {
  const std::map<std::string, std::set<std::string>> expected = {
      {"missing-slices", {"missing-slices", "uneven-spacing"}},
      {"truncated", {"skipped-file", "missing-slices", "uneven-spacing"}},
      {"duplicate", {"duplicate-position"}},
      {"localizer", {"mixed-series"}},
      {"other-series", {}},
  };
  TempDir tmp;
  for (const auto& [kind, codes] : expected) {
    SynthOptions o = small(tmp / kind, 1, 4);
    o.matrix = 96;
    o.slices = 40;
    o.inject = {kind};
    const SynthSummary s = generate_dataset(o);
    const std::string dir = tmp / (kind + "/train_images/" + s.studies[0].study_uid);
    const StudyIndex index = scan_studies(dir);
    ASSERT_EQ(index.studies.size(), 1u) << kind;
    EXPECT_EQ(index.studies[0].series.size(), kind == "other-series" ? 2u : 1u) << kind;
    const LoadedSeries l = load_study(index, "");
    std::set<std::string> got;
    for (const auto& w : l.warnings) got.insert(w.code);
    EXPECT_EQ(got, codes) << kind << ":\n" << warnings_text(l.warnings);
    EXPECT_EQ(l.volume.size[2], kind == "missing-slices" ? 38 : kind == "truncated" ? 39 : 40) << kind;
    const auto manifest = nlohmann::json::parse(std::ifstream(tmp / (kind + "/synth.json")));
    EXPECT_EQ(manifest["studies"][0]["injected"], nlohmann::json::array({kind}));
  }
  SynthOptions bad = small(tmp / "bad", 1, 4);
  bad.inject = {"gremlins"};
  EXPECT_THROW(generate_dataset(bad), UsageError);
}
