// cspine synth: synthetic neck CT studies with known vertebrae and fractures, written in the exact layout of
// the RSNA 2022 Cervical Spine Fracture Detection data (DICOM folders, NIfTI segmentations, CSV labels).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cspine {

struct SynthOptions {
  std::string out_dir;
  int studies = 0;
  uint64_t seed = 0;
  double test_fraction = 0.2;  // share of studies written to test_images/ (labels in test_labels.csv)
  double fracture_rate = 0.5;  // probability that a study has at least one fractured vertebra
  int matrix = 512;            // rows = columns
  int slices = 0;              // 0: chosen from the anatomy and a slice spacing of 0.5-1 mm (scaled with matrix)
  std::string transfer_syntax = "mix";
  double difficulty = 0.5;  // 0: obvious fractures; 1: mostly hairline lines and mild compressions
  bool preview = false;     // previews/<UID>_axial.png and _sagittal.png
  bool overwrite = false;   // replace an earlier synth output in out_dir (only the files synth writes)
  int threads = 0;          // 0: all cores
  // Deliberate defects in every study, for testing readers (see synth_injections()); none by default.
  std::vector<std::string> inject;
};

struct SynthFractureInfo {
  std::string vertebra, kind, site;
  bool subtle = false;
  bool visible = false;  // changed the image enough to count (label and boxes)
};

struct SynthStudyInfo {
  std::string study_uid;
  bool test = false;
  int slices = 0, matrix = 0;
  double pixel_mm = 0, slice_mm = 0;
  std::string transfer_syntax;
  bool head_first_numbering = false;
  std::vector<int> fractured;  // C1..C7: 0/1, from what was drawn
  std::vector<SynthFractureInfo> fractures;
  int boxes = 0;
  double seconds_render = 0, seconds_write = 0;
};

struct SynthSummary {
  std::vector<SynthStudyInfo> studies;
  double seconds = 0;
};

// Writes the data set. Throws UsageError for bad options, OutputError when out_dir cannot be written or
// already holds a data set (unless overwrite).
SynthSummary generate_dataset(const SynthOptions& options);

// "easy" (0.2), "normal" (0.5), "hard" (0.8), or a number in [0, 1].
std::optional<double> parse_difficulty(const std::string& text);

// Defects --inject can add to each study, and the loader warnings they cause:
//   missing-slices (two slice files removed: missing-slices), truncated (one file cut short: skipped-file,
//   missing-slices), duplicate (one file copied under a new name: duplicate-position), localizer (a sagittal
//   scout under the axial series' UID: mixed-series), other-series (a secondary-capture dose report in its
//   own series: none; the CT series is still chosen).
std::vector<std::string> synth_injections();

// The transfer syntax names synth accepts: "mix" plus each single one.
std::vector<std::string> synth_transfer_syntaxes();

}  // namespace cspine
