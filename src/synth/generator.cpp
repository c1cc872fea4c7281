// Orchestrates `cspine synth`: per study, sample a phantom, choose the acquisition, render, and write the
// DICOM series, the segmentation and the labels in the RSNA 2022 layout. Every random choice comes from
// the seed and the study's index, so a study is the same whatever else is generated with it.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "util/text.h"
#include "cspine/vertebrae.h"
#include "cspine/dicom_writer.h"
#include "cspine/error.h"
#include "cspine/synth.h"
#include "cspine/volume.h"
#include "dicom/codecs.h"
#include "synth/anatomy.h"
#include "synth/preview.h"
#include "synth/render.h"
#include "util/atomic_file.h"
#include "util/interrupt.h"
#include "util/log.h"
#include "util/parallel.h"

namespace fs = std::filesystem;

namespace cspine {

namespace {
using synth::Rng;

// Data-set files and folders synth owns; --overwrite removes these and nothing else.
constexpr const char* kOwned[] = {"train_images",
                                  "test_images",
                                  "segmentations",
                                  "previews",
                                  "train.csv",
                                  "test.csv",
                                  "sample_submission.csv",
                                  "test_labels.csv",
                                  "train_bounding_boxes.csv",
                                  "test_bounding_boxes.csv",
                                  "synth.json"};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// How the scanner stores values: BitsStored, sign, rescale, and what lies outside the reconstruction circle.
struct Storage {
  int bits_stored;
  bool is_signed;
  double intercept;
  double outside_hu;
  std::optional<int32_t> padding;
  const char* name;
};
constexpr Storage kStorages[] = {
    {12, false, -1024, -1024, std::nullopt, "unsigned-12bit"},
    {16, false, -1024, -1024, std::nullopt, "unsigned-16bit"},
    {16, true, -1024, -3024, -2000, "signed-16bit-padding"},
    {16, true, 0, -3024, std::nullopt, "signed-16bit-intercept0"},
};

TransferSyntax pick_syntax(const std::string& wanted, Rng& rng) {
  if (wanted != "mix") return *parse_transfer_syntax(wanted);
  // The RSNA 2022 data is mostly JPEG lossless (SV1) and explicit little endian; a few others for variety.
  const double u = rng.uniform();
  if (u < 0.40) return TransferSyntax::explicit_little;
  if (u < 0.80) return TransferSyntax::jpeg_lossless_sv1;
  if (u < 0.90) return TransferSyntax::implicit_little;
  if (u < 0.95) return TransferSyntax::rle;
  return TransferSyntax::jpeg_ls_lossless;
}

std::string syntax_label(TransferSyntax ts) {
  switch (ts) {
    case TransferSyntax::explicit_little:
      return "explicit";
    case TransferSyntax::implicit_little:
      return "implicit";
    case TransferSyntax::explicit_big:
      return "big-endian";
    case TransferSyntax::deflated:
      return "deflated";
    case TransferSyntax::jpeg_lossless_sv1:
      return "jpeg-lossless";
    case TransferSyntax::jpeg_ls_lossless:
      return "jpeg-ls";
    case TransferSyntax::rle:
      return "rle";
    case TransferSyntax::jpeg2000_lossless:
      return "j2k";
  }
  return "?";
}

void write_text(const fs::path& path, const std::string& text) {
  write_atomically(path.string(), [&](const std::string& tmp) {
    std::ofstream f(tmp, std::ios::binary);
    f << text;
    f.close();
    if (!f) throw OutputError("cannot write '" + path.string() + "'");
  });
}

struct StudyRecord {
  SynthStudyInfo info;
  std::vector<std::string> box_rows;  // "x,y,width,height,slice_number"
  nlohmann::json truth;
};

nlohmann::json v3_json(synth::V3 v) {
  auto r = [](double x) { return std::round(x * 1000.0) / 1000.0; };
  return nlohmann::json::array({r(v.x), r(v.y), r(v.z)});
}

// The competition's segmentations are stored with the rows flipped (orientation LAS, as dcm2niix writes) and
// the slices from the feet up; notebooks read them as seg[:, ::-1, ::-1].transpose(2, 1, 0). Ours are stored
// the same way, with an exact affine, so that header-aware readers and code written for the real files both
// line up (and a reader that ignores the header is wrong in the same way).
void write_segmentation(const Volume& ct, std::vector<uint8_t>& labels, const std::string& path) {
  Volume geometry;
  geometry.size = ct.size;
  geometry.spacing = ct.spacing;
  const auto last_row = ct.voxel_to_lps(0, ct.size[1] - 1, 0);
  geometry.origin = {last_row[0], last_row[1], last_row[2]};
  geometry.direction = ct.direction;
  for (int r = 0; r < 3; ++r) geometry.direction[static_cast<std::size_t>(r * 3 + 1)] *= -1.0;
  // Rows flipped in place (no second copy of the label map), written, and flipped back.
  const std::size_t cols = static_cast<std::size_t>(ct.size[0]), rows = static_cast<std::size_t>(ct.size[1]);
  auto flip_rows = [&] {
    for (std::size_t k = 0; k < static_cast<std::size_t>(ct.size[2]); ++k)
      for (std::size_t j = 0; j < rows / 2; ++j)
        std::swap_ranges(labels.begin() + static_cast<std::ptrdiff_t>((k * rows + j) * cols),
                         labels.begin() + static_cast<std::ptrdiff_t>((k * rows + j + 1) * cols),
                         labels.begin() + static_cast<std::ptrdiff_t>((k * rows + (rows - 1 - j)) * cols));
  };
  flip_rows();
  try {
    write_label_nifti(geometry, labels, path);
  } catch (...) {
    flip_rows();
    throw;
  }
  flip_rows();
}

// How one study is acquired: everything about it that is not anatomy. Drawn after the phantom, in this order.
struct Acquisition {
  synth::Grid grid;
  double fov = 0;
  const Storage* storage = nullptr;
  bool head_first = false;
  TransferSyntax syntax = TransferSyntax::explicit_little;
  std::pair<double, double> window;
  std::string kernel, study_uid, series_uid, date, patient_id;
  int age = 0;
  bool female = false;
  int instance_of(int k) const { return head_first ? grid.slices - k : k + 1; }
};

Acquisition choose_acquisition(const SynthOptions& o, const synth::Phantom& ph, Rng& rng, uint64_t study_seed,
                               int index) {
  Acquisition a;
  a.fov = rng.uniform(140, 250);
  synth::Grid& g = a.grid;
  g.columns = g.rows = o.matrix;
  g.pixel_mm = a.fov / o.matrix;
  const double span = ph.z_top - ph.z_bottom;
  if (o.slices > 0) {
    g.slices = o.slices;
    g.slice_mm = span / std::max(1, o.slices - 1);
  } else {
    // 0.5-1 mm at 512, coarser with the matrix (at most 3 mm); 150-400 slices at 512, fewer with the matrix.
    const double choices[] = {0.5, 0.625, 0.8, 1.0};
    g.slice_mm = std::min(3.0, rng.pick(choices) * std::max(1.0, 512.0 / o.matrix));
    const double factor = o.matrix / 512.0;
    const int lo = std::max(16, static_cast<int>(150 * factor)), hi = std::max(24, static_cast<int>(400 * factor));
    g.slices = std::clamp(static_cast<int>(std::lround(span / g.slice_mm)) + 1, lo, hi);
    g.slice_mm = span / (g.slices - 1);
  }
  // The field of view is centred near C4, off by a little as a technologist would leave it.
  const synth::TrackPoint c4 = synth::track_at(ph, ph.bones[3].origin.z);
  const double cx = c4.body.x + rng.uniform(-10, 10), cy = c4.body.y + rng.uniform(-20, 5);
  g.origin = {cx - 0.5 * (g.columns - 1) * g.pixel_mm, cy - 0.5 * (g.rows - 1) * g.pixel_mm, ph.z_bottom};
  a.storage = &kStorages[rng.next() % std::size(kStorages)];
  a.head_first = rng.chance(0.5);
  a.syntax = pick_syntax(o.transfer_syntax, rng);
  const std::pair<double, double> windows[] = {{400, 1800}, {500, 2000}, {40, 400}, {300, 1500}};
  a.window = rng.pick(windows);
  const char* kernels[] = {"BONE", "B70s", "YC", "D", "BONEPLUS"};
  a.kernel = rng.pick(kernels);
  a.study_uid = synth::derived_uid(study_seed, 1);
  a.series_uid = synth::derived_uid(study_seed, 2);
  const int day = rng.integer(1, 28), month = rng.integer(1, 12);
  char buf[32];
  std::snprintf(buf, sizeof buf, "2026%02d%02d", month, day);
  a.date = buf;
  std::snprintf(buf, sizeof buf, "SYNTH-%06d", index + 1);
  a.patient_id = buf;
  a.age = rng.integer(18, 90);
  a.female = rng.chance(0.4);
  return a;
}

// Outside the reconstruction circle the scanner stores its own value (or padding); labels are unaffected.
void apply_reconstruction_circle(Volume& v, const Acquisition& a) {
  const synth::Grid& g = a.grid;
  const double radius = 0.5 * a.fov, ccx = 0.5 * (g.columns - 1), ccy = 0.5 * (g.rows - 1);
  std::vector<std::size_t> outside_pixels;
  for (int j = 0; j < g.rows; ++j)
    for (int i = 0; i < g.columns; ++i)
      if (std::hypot((i - ccx) * g.pixel_mm, (j - ccy) * g.pixel_mm) > radius)
        outside_pixels.push_back(static_cast<std::size_t>(j) * g.columns + i);
  const auto outside = static_cast<int16_t>(a.storage->outside_hu);
  for (int k = 0; k < g.slices; ++k) {
    int16_t* slice = v.slice(k);
    for (std::size_t idx : outside_pixels) slice[idx] = outside;
  }
}

// Labels follow from what the image shows: a vertebra counts as fractured when its fractures changed at least
// 1 mm^3 (and 4 voxels) by more than kFractureHu; its boxes are the changed pixels per slice. Fills
// rec.info.fractured, rec.info.fractures, rec.box_rows and the truth JSON's fractures and boxes.
void derive_labels(const synth::Phantom& ph, const synth::Rendered& r, const Acquisition& a, StudyRecord& rec,
                   nlohmann::json& fractures, nlohmann::json& boxes) {
  SynthStudyInfo& info = rec.info;
  const synth::Grid& g = a.grid;
  info.fractured.assign(7, 0);
  const double voxel_mm3 = g.pixel_mm * g.pixel_mm * g.slice_mm;
  auto visible = [&](int label) {
    const long n = r.changed_voxels[static_cast<std::size_t>(label)];
    return n >= 4 && n * voxel_mm3 >= 1.0;
  };
  fractures = nlohmann::json::array();
  for (const synth::Bone& b : ph.bones) {
    for (const synth::Fracture& f : b.fractures) {
      SynthFractureInfo fi{b.name, synth::fracture_kind_name(f.kind), f.site, f.subtle, visible(b.label)};
      info.fractures.push_back(fi);
      nlohmann::json j{
          {"vertebra", b.name},    {"kind", fi.kind},
          {"site", f.site},        {"subtle", f.subtle},
          {"visible", fi.visible}, {"changed_voxels", r.changed_voxels[static_cast<std::size_t>(b.label)]}};
      if (f.kind == synth::FractureKind::compression) {
        j["height_loss"] = std::round(f.compression * 1000) / 1000;
        j["wedge"] = f.wedge;
      } else {
        j["plane_point_mm"] = v3_json(f.p0);
        j["plane_normal"] = v3_json(f.n);
        j["gap_mm"] = std::round(f.gap * 1000) / 1000;
      }
      if (f.kind == synth::FractureKind::fragment) j["displacement_mm"] = v3_json(f.shift);
      fractures.push_back(j);
    }
    if (b.label >= 1 && b.label <= 7 && !b.fractures.empty() && visible(b.label))
      info.fractured[static_cast<std::size_t>(b.label - 1)] = 1;
  }
  boxes = nlohmann::json::array();
  for (const synth::FractureFootprint& fp : r.footprints) {
    if (fp.label < 1 || fp.label > 7 || !info.fractured[static_cast<std::size_t>(fp.label - 1)] || fp.pixels < 3)
      continue;
    std::ostringstream row;
    row << fp.x0 << ',' << fp.y0 << ',' << (fp.x1 - fp.x0 + 1) << ',' << (fp.y1 - fp.y0 + 1) << ','
        << a.instance_of(fp.slice);
    rec.box_rows.push_back(row.str());
    boxes.push_back(
        {{"vertebra", kVertebraNames.at(static_cast<std::size_t>(fp.label - 1))}, {"slice_number", a.instance_of(fp.slice)}, {"pixels", fp.pixels}});
  }
  info.boxes = static_cast<int>(rec.box_rows.size());
}

// Header of axial slice k (position order) of the study.
CtSliceSpec slice_spec(const Acquisition& a, uint64_t study_seed, int index, int k) {
  const synth::Grid& g = a.grid;
  CtSliceSpec s;
  s.patient_id = a.patient_id;
  s.patient_name = "Synthetic^" + a.patient_id;
  s.study_uid = a.study_uid;
  s.series_uid = a.series_uid;
  s.sop_instance_uid = synth::derived_uid(study_seed, 1000 + static_cast<uint64_t>(k));
  s.study_date = a.date;
  s.series_description = "C-SPINE W/O CONTRAST (synthetic phantom)";
  s.series_number = 2;
  s.instance_number = a.instance_of(k);
  s.rows = g.rows;
  s.columns = g.columns;
  const double z = g.origin.z + k * g.slice_mm;
  s.position = {g.origin.x, g.origin.y, z};
  s.slice_location = z;
  s.pixel_spacing = {g.pixel_mm, g.pixel_mm};
  s.slice_thickness = std::round(std::max(g.slice_mm, 0.625) * 1000) / 1000;
  s.rescale_intercept = a.storage->intercept;
  s.bits_stored = a.storage->bits_stored;
  s.is_signed = a.storage->is_signed;
  s.padding_value = a.storage->padding;
  s.window_center = a.window.first;
  s.window_width = a.window.second;
  s.extra = {{"SpecificCharacterSet", "ISO_IR 100"},
             {"StudyTime", "031500"},
             {"SeriesTime", "031700"},
             {"StudyID", std::to_string(index + 1)},
             {"AccessionNumber", "SYN" + std::to_string(100000 + index)},
             {"PatientSex", a.female ? "F" : "M"},
             {"PatientAge", "0" + std::to_string(a.age) + "Y"},  // nnnY, ages 18-90
             {"PatientPosition", "HFS"},
             {"BodyPartExamined", "CSPINE"},
             {"ManufacturerModelName", "cspine synthetic phantom"},
             {"ConvolutionKernel", a.kernel},
             {"ReconstructionDiameter", std::to_string(static_cast<int>(std::lround(a.fov)))},
             {"AcquisitionNumber", "1"},
             {"BurnedInAnnotation", "NO"},
             {"ImageComments", "SYNTHETIC PHANTOM - NOT A PATIENT"}};
  return s;
}

// Deliberate defects, for testing what reads the data (see synth_injections()). Applied in the hidden folder
// before it is renamed, from their own random stream so that the rest of the study does not change.
void inject(const std::vector<std::string>& kinds, const fs::path& dir, const Volume& v, const Acquisition& a,
            uint64_t study_seed, int index) {
  if (kinds.empty()) return;
  Rng rng(synth::hash2(study_seed, 0x696e6a656374ULL));
  const int n = a.grid.slices;
  auto file_of = [&](int k) { return dir / (std::to_string(a.instance_of(k)) + ".dcm"); };
  auto middle = [&]() { return n / 3 + static_cast<int>(rng.next() % static_cast<uint64_t>(std::max(1, n / 3 - 2))); };
  int extra_number = n;  // extra files are numbered after the last slice, as a scanner would
  for (const std::string& kind : kinds) {
    if (kind == "missing-slices") {  // two consecutive slices lost in transfer
      const int k = middle();
      fs::remove(file_of(k));
      fs::remove(file_of(k + 1));
    } else if (kind == "truncated") {  // an interrupted copy
      const fs::path f = file_of(middle());
      if (fs::exists(f)) fs::resize_file(f, fs::file_size(f) * 6 / 10);
    } else if (kind == "duplicate") {  // the same image twice under another file name
      const fs::path f = file_of(middle());
      if (fs::exists(f)) fs::copy_file(f, dir / (std::to_string(++extra_number) + ".dcm"));
    } else if (kind == "localizer") {  // a sagittal scout filed under the axial series' UID
      CtSliceSpec s = slice_spec(a, study_seed, index, 0);
      s.sop_instance_uid = synth::derived_uid(study_seed, 900);
      s.image_type = {"ORIGINAL", "PRIMARY", "LOCALIZER"};
      s.instance_number = ++extra_number;
      s.rows = std::min(n, 512);
      s.columns = a.grid.rows;
      s.orientation = {0, 1, 0, 0, 0, -1};
      const auto top = v.voxel_to_lps(v.size[0] / 2, 0, n - 1);
      s.position = {top[0], top[1], top[2]};
      s.pixel_spacing = {a.grid.slice_mm, a.grid.pixel_mm};
      s.slice_location.reset();
      std::vector<int16_t> hu(static_cast<std::size_t>(s.rows) * s.columns);
      for (int r = 0; r < s.rows; ++r)  // the mid-sagittal reformat, head at the top
        for (int c = 0; c < s.columns; ++c)
          hu[static_cast<std::size_t>(r) * s.columns + c] = v.at(v.size[0] / 2, c, n - 1 - r);
      write_ct_slice((dir / (std::to_string(extra_number) + ".dcm")).string(), s, hu, TransferSyntax::explicit_little);
    } else if (kind == "other-series") {  // a dose-report screen capture in its own series
      CtSliceSpec s = slice_spec(a, study_seed, index, 0);
      s.sop_instance_uid = synth::derived_uid(study_seed, 901);
      s.series_uid = synth::derived_uid(study_seed, 3);
      s.series_number = 999;
      s.series_description = "Dose Report";
      s.modality = "OT";
      s.sop_class_uid = "1.2.840.10008.5.1.4.1.1.7";  // Secondary Capture Image Storage
      s.image_type = {"DERIVED", "SECONDARY", "SCREEN SAVE"};
      s.instance_number = 1;
      s.rows = s.columns = 64;
      s.slice_location.reset();
      std::vector<int16_t> pixels(64 * 64, -1024);
      write_ct_slice((dir / (std::to_string(++extra_number) + ".dcm")).string(), s, pixels,
                     TransferSyntax::explicit_little);
    }
  }
}

// The DICOM series, written into a hidden folder and renamed into place when complete.
void write_series(const Volume& v, const Acquisition& a, uint64_t study_seed, int index, const fs::path& images,
                  const std::vector<std::string>& injections, int threads) {
  const synth::Grid& g = a.grid;
  const fs::path partial = images / (".partial-" + a.study_uid), final_dir = images / a.study_uid;
  fs::remove_all(partial);
  fs::create_directories(partial);
  parallel_for(static_cast<std::size_t>(g.slices), threads, [&](std::size_t ks) {
    throw_if_interrupted();
    const int k = static_cast<int>(ks);
    const int16_t* src = v.slice(k);
    std::vector<int16_t> hu(src, src + v.slice_voxels());
    write_ct_slice((partial / (std::to_string(a.instance_of(k)) + ".dcm")).string(),
                   slice_spec(a, study_seed, index, k), hu, a.syntax);
  });
  inject(injections, partial, v, a, study_seed, index);
  fs::remove_all(final_dir);
  fs::rename(partial, final_dir);
}

StudyRecord make_study(const SynthOptions& o, int index, bool test, const fs::path& out, int threads) {
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t study_seed = synth::hash2(o.seed, static_cast<uint64_t>(index));
  Rng rng(study_seed);
  Rng fracture_rng(synth::hash2(study_seed, 0x6672616374ULL));  // separate stream: see make_phantom
  const bool fractured = fracture_rng.chance(o.fracture_rate);
  synth::AnatomyOptions ao;
  ao.fracture_rate = o.fracture_rate;
  ao.difficulty = o.difficulty;
  const synth::Phantom ph = synth::make_phantom(rng, fracture_rng, ao, fractured);
  const Acquisition a = choose_acquisition(o, ph, rng, study_seed, index);
  synth::Rendered r = synth::render(ph, a.grid, synth::hash2(study_seed, 0x6e6f697365ULL), threads);
  apply_reconstruction_circle(r.volume, a);

  StudyRecord rec;
  SynthStudyInfo& info = rec.info;
  info.study_uid = a.study_uid;
  info.test = test;
  info.slices = a.grid.slices;
  info.matrix = o.matrix;
  info.pixel_mm = a.grid.pixel_mm;
  info.slice_mm = a.grid.slice_mm;
  info.transfer_syntax = syntax_label(a.syntax);
  info.head_first_numbering = a.head_first;
  info.seconds_render = seconds_since(t0);
  nlohmann::json fractures, boxes;
  derive_labels(ph, r, a, rec, fractures, boxes);

  const auto t1 = std::chrono::steady_clock::now();
  write_series(r.volume, a, study_seed, index, out / (test ? "test_images" : "train_images"), o.inject, threads);
  if (!test) {
    fs::create_directories(out / "segmentations");
    write_segmentation(r.volume, r.labels, (out / "segmentations" / (a.study_uid + ".nii")).string());
  }
  if (o.preview) {
    fs::create_directories(out / "previews");
    synth::write_previews(r.volume, r.labels, r.footprints, info.fractured, (out / "previews" / a.study_uid).string());
  }
  info.seconds_write = seconds_since(t1);

  rec.truth = {{"study_uid", a.study_uid},
               {"split", test ? "test" : "train"},
               {"index", index},
               {"patient_id", a.patient_id},
               {"rows", a.grid.rows},
               {"columns", a.grid.columns},
               {"slices", a.grid.slices},
               {"pixel_spacing_mm", a.grid.pixel_mm},
               {"slice_spacing_mm", a.grid.slice_mm},
               {"field_of_view_mm", a.fov},
               {"transfer_syntax", info.transfer_syntax},
               {"storage", a.storage->name},
               {"numbering", a.head_first ? "head-first" : "feet-first"},
               {"injected", o.inject},
               {"noise_sd_hu", ph.noise_sd},
               {"edge_blur_voxels", ph.edge_blur},
               {"size_scale", ph.scale},
               {"osteoporotic", ph.osteoporotic},
               {"osteophyte_levels", ph.osteophyte_levels},
               {"sclerotic_spots", ph.sclerotic_spots},
               {"laryngeal_calcification", ph.laryngeal_calcification},
               {"carotid_calcification", ph.carotid_calcification},
               {"fractured", info.fractured},
               {"fractures", fractures},
               {"boxes", boxes}};
  return rec;
}

std::string wide_row(const SynthStudyInfo& s) {
  int overall = 0;
  for (int f : s.fractured) overall |= f;
  std::string row = s.study_uid + "," + std::to_string(overall);
  for (int f : s.fractured) row += "," + std::to_string(f);
  return row;
}

// The tables and the manifest (no timings in them: they stay byte-identical for a seed).
void write_tables(const fs::path& out, const SynthOptions& o, const std::vector<StudyRecord>& records) {
  const std::string wide_header = "StudyInstanceUID,patient_overall,C1,C2,C3,C4,C5,C6,C7\n";
  std::string train = wide_header, test_labels = wide_header;
  std::string test = "row_id,StudyInstanceUID,prediction_type\n", sample = "row_id,fractured\n";
  const std::string box_header = "StudyInstanceUID,x,y,width,height,slice_number\n";
  std::string train_boxes = box_header, test_boxes = box_header;
  nlohmann::json studies = nlohmann::json::array();
  for (const StudyRecord& r : records) {
    const SynthStudyInfo& s = r.info;
    (s.test ? test_labels : train) += wide_row(s) + "\n";
    for (const std::string& b : r.box_rows) (s.test ? test_boxes : train_boxes) += s.study_uid + "," + b + "\n";
    if (s.test) {
      // Kaggle's test.csv order: C1..C7, then patient_overall.
      for (int k = 1; k <= kNumLabels; ++k) {
        const int label = k % kNumLabels;
        test += row_id(s.study_uid, label) + "," + s.study_uid + "," + kLabelNames[static_cast<std::size_t>(label)] + "\n";
        sample += row_id(s.study_uid, label) + ",0.5\n";
      }
    }
    studies.push_back(r.truth);
  }
  write_text(out / "train.csv", train);
  write_text(out / "train_bounding_boxes.csv", train_boxes);
  write_text(out / "test.csv", test);
  write_text(out / "sample_submission.csv", sample);
  write_text(out / "test_labels.csv", test_labels);
  write_text(out / "test_bounding_boxes.csv", test_boxes);
  nlohmann::json manifest{{"generator", "cspine synth"},
                          {"note", "Synthetic phantoms, not patients. Labels follow from what was drawn."},
                          {"options",
                           {{"studies", o.studies},
                            {"seed", o.seed},
                            {"test_fraction", o.test_fraction},
                            {"fracture_rate", o.fracture_rate},
                            {"matrix", o.matrix},
                            {"slices", o.slices == 0 ? nlohmann::json("auto") : nlohmann::json(o.slices)},
                            {"transfer_syntax", o.transfer_syntax},
                            {"difficulty", o.difficulty},
                            {"inject", o.inject}}},
                          {"studies_written", records.size()},
                          {"studies", studies}};
  write_text(out / "synth.json", dump_json(manifest, 1) + "\n");
}

void prepare_output(const SynthOptions& o) {
  const fs::path out(o.out_dir);
  std::error_code ec;
  if (fs::exists(out, ec) && !fs::is_directory(out, ec))
    throw OutputError("'" + o.out_dir + "' exists and is not a folder");
  std::vector<std::string> present;
  for (const char* name : kOwned)
    if (fs::exists(out / name, ec)) present.push_back(name);
  if (!present.empty()) {
    if (!o.overwrite)
      throw OutputError("'" + o.out_dir + "' already holds a data set (" + present.front() +
                        (present.size() > 1 ? " and " + std::to_string(present.size() - 1) + " more" : "") +
                        "); choose another folder or pass --overwrite");
    for (const std::string& name : present) fs::remove_all(out / name, ec);
    if (ec) throw OutputError("cannot remove '" + (out / present.front()).string() + "': " + ec.message());
  }
  fs::create_directories(out / "train_images", ec);
  if (!ec) fs::create_directories(out / "test_images", ec);
  if (ec) throw OutputError("cannot create '" + o.out_dir + "': " + ec.message());
  check_output_path((out / "train.csv").string());
}

}  // namespace

std::optional<double> parse_difficulty(const std::string& text) {
  if (text == "easy") return 0.2;
  if (text == "normal") return 0.5;
  if (text == "hard") return 0.8;
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size() && v >= 0 && v <= 1) return v;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

std::vector<std::string> synth_injections() {
  return {"missing-slices", "truncated", "duplicate", "localizer", "other-series"};
}

std::vector<std::string> synth_transfer_syntaxes() {
  return {"mix", "explicit", "implicit", "big-endian", "deflated", "jpeg-lossless", "jpeg-ls", "rle", "j2k"};
}

SynthSummary generate_dataset(const SynthOptions& o) {
  if (o.studies < 1) throw UsageError("--studies must be at least 1");
  if (o.matrix < 64 || o.matrix > 1024) throw UsageError("--matrix must be between 64 and 1024");
  if (o.slices != 0 && (o.slices < 16 || o.slices > 2000)) throw UsageError("--slices must be 'auto' or 16..2000");
  if (o.test_fraction < 0 || o.test_fraction > 1) throw UsageError("--test-fraction must be in [0, 1]");
  if (o.fracture_rate < 0 || o.fracture_rate > 1) throw UsageError("--fracture-rate must be in [0, 1]");
  if (o.difficulty < 0 || o.difficulty > 1) throw UsageError("--difficulty must be in [0, 1]");
  for (const std::string& kind : o.inject) {
    const auto known = synth_injections();
    if (std::find(known.begin(), known.end(), kind) == known.end())
      throw UsageError("unknown --inject kind '" + kind + "'");
  }
  if (o.transfer_syntax != "mix" && !parse_transfer_syntax(o.transfer_syntax))
    throw UsageError("unknown transfer syntax '" + o.transfer_syntax + "'");
  dicom::ensure_codecs();  // fails plainly, before anything is written, when DCMTK's dictionary is missing
  prepare_output(o);
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path out(o.out_dir);
  const int threads = resolve_threads(o.threads);
  const int n_test = static_cast<int>(std::lround(o.studies * o.test_fraction));
  SynthSummary summary;
  std::vector<StudyRecord> records;
  auto last_tables = std::chrono::steady_clock::now();
  for (int i = 0; i < o.studies; ++i) {
    const bool test = i >= o.studies - n_test;
    // Whatever stops a study, its hidden folder goes and the tables keep every finished study.
    auto keep_finished = [&] {
      std::error_code ec;
      for (const char* split : {"train_images", "test_images"})
        for (const auto& entry : fs::directory_iterator(out / split, ec))
          if (entry.path().filename().string().rfind(".partial-", 0) == 0) fs::remove_all(entry.path(), ec);
      try {
        write_tables(out, o, records);
      } catch (const Error&) {  // the original failure is the one to report
      }
    };
    const std::string done = std::to_string(records.size()) + " of " + std::to_string(o.studies) +
                             " studies finished and saved in " + o.out_dir;
    try {
      throw_if_interrupted();
      records.push_back(make_study(o, i, test, out, threads));
    } catch (const InterruptedError& e) {
      keep_finished();
      throw InterruptedError(std::string(e.what()) + ": " + done);
    } catch (const fs::filesystem_error& e) {
      keep_finished();
      throw OutputError("cannot write study " + std::to_string(i + 1) + " under '" + o.out_dir + "': " + e.what() +
                        "; " + done);
    } catch (const Error& e) {
      keep_finished();
      throw Error(e.code(), std::string(e.what()) + "; " + done);
    }
    const SynthStudyInfo& s = records.back().info;
    int n_frac = 0;
    for (int f : s.fractured) n_frac += f;
    CSPINE_INFO("study {}/{} {} ({}, {}x{}x{}, {}, {} fractured vertebrae, {} boxes): render {:.2f} s, write {:.2f} s",
                i + 1, o.studies, s.study_uid, s.test ? "test" : "train", s.matrix, s.matrix, s.slices,
                s.transfer_syntax, n_frac, s.boxes, s.seconds_render, s.seconds_write);
    // Tables after each study (at most every few seconds, since they grow with the data set), at the end and
    // on an interrupt: a stopped run keeps consistent labels for what it finished.
    if (i + 1 == o.studies || seconds_since(last_tables) > 3.0) {
      write_tables(out, o, records);
      last_tables = std::chrono::steady_clock::now();
    }
    summary.studies.push_back(s);
  }
  summary.seconds = seconds_since(t0);
  return summary;
}

}  // namespace cspine
