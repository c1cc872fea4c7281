// predict --dicom-out without a model: a small written series, a hand-made label map and results, through
// write_dicom_results and the writer; read back with DCMTK (tests/python/test_dicom_out.py checks the objects with
// dciodvfy and pydicom on real predictions).
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmsr/dsrdoc.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "cspine/dicom.h"
#include "output/dicom_results.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace cspine;
using namespace cspine::test;

namespace {

std::string get(DcmDataset& d, const DcmTagKey& tag) {
  OFString v;
  d.findAndGetOFStringArray(tag, v);
  return v.c_str();
}

struct Scored {
  WrittenSeries written;
  StudyResult r;
};

// 8 slices of 32 x 32; C3 on slices 2-4 (key slice 3), C5 on slice 6 only (too few slices: the prior).
Scored scored_study(const std::string& dir) {
  Scored s;
  s.written = write_series(dir, small_series(8));
  const StudyIndex index = scan_studies(dir);
  LoadedSeries loaded = load_study(index, "");
  StudyResult& r = s.r;
  r.study_uid = s.written.study_uid;
  r.series_uid = s.written.series_uid;
  r.size = loaded.volume.size;
  r.spacing = loaded.volume.spacing;
  r.slice_numbers = loaded.slice_numbers;
  r.sources = loaded.slice_sources;
  r.source_files = loaded.slice_files;
  r.geometry = loaded.volume.geometry();
  r.labels.cols = r.size[0];
  r.labels.rows = r.size[1];
  r.labels.slices = r.size[2];
  r.labels.labels.assign(loaded.volume.voxel_count(), 0);
  auto put = [&](int k, int label) {
    for (int j = 10; j < 20; ++j)
      for (int i = 8; i < 16; ++i) r.labels.labels[(static_cast<std::size_t>(k) * r.size[1] + j) * r.size[0] + i] = label;
  };
  for (int k = 2; k <= 4; ++k) put(k, 3);
  put(6, 5);
  for (auto& v : r.vertebrae) v.probability = 0.1, v.fallback = Fallback::not_found;
  VertebraResult& c3 = r.vertebrae[2];
  c3.probability = 0.8;
  c3.fallback = Fallback::none;
  c3.extent = VertebraExtent{};
  c3.extent->z0 = 2;
  c3.extent->z1 = 4;
  c3.extent->x0 = 8;
  c3.extent->x1 = 15;
  c3.picked = {2, 3, 4};
  c3.attention = {0.2f, 0.5f, 0.3f};
  c3.key = 1;
  r.vertebrae[4].fallback = Fallback::too_few_slices;
  r.patient_overall = 0.9;
  r.ct = std::make_shared<const Volume>(std::move(loaded.volume));
  return s;
}

}  // namespace

TEST(DicomResults, WritesASegAnSrAndAKeyImageInTheSourceStudy) {
  TempDir src, out, again;
  const Scored s = scored_study(src.str());
  ASSERT_EQ(dicom_output_problem(s.r), "");
  const DicomModels models{"0123456789abcdef", "fedcba9876543210"};
  const DicomObjects o = write_dicom_results(s.r, models, out.str());
  EXPECT_EQ(o.segments, 2);
  EXPECT_EQ(o.seg_frames, 4);  // C3 on 3 slices, C5 on 1

  DcmSegmentation* seg = nullptr;
  ASSERT_TRUE(DcmSegmentation::loadFile(o.seg_path.c_str(), seg).good());
  std::unique_ptr<DcmSegmentation> owned(seg);
  EXPECT_EQ(seg->getNumberOfSegments(), 2u);
  EXPECT_EQ(seg->getNumberOfFrames(), 4u);

  for (const std::string& path : {o.seg_path, o.sr_path, o.key_path}) {
    DcmFileFormat ff;
    ASSERT_TRUE(ff.loadFile(path.c_str()).good()) << path;
    DcmDataset& d = *ff.getDataset();
    EXPECT_EQ(get(d, DCM_StudyInstanceUID), s.r.study_uid) << path;
    EXPECT_NE(get(d, DCM_SeriesInstanceUID), s.r.series_uid) << path;
    EXPECT_NE(get(d, DCM_SeriesDescription).find("research use only, not for diagnosis"), std::string::npos) << path;
  }
  DcmFileFormat sr_file;
  ASSERT_TRUE(sr_file.loadFile(o.sr_path.c_str()).good());
  DSRDocument sr;
  ASSERT_TRUE(sr.read(*sr_file.getDataset()).good());
  EXPECT_EQ(sr.getDocumentType(), DSRTypes::DT_ComprehensiveSR);

  // The same study and models give the same UIDs; other models give others.
  const DicomObjects o2 = write_dicom_results(s.r, models, again.str());
  EXPECT_EQ(o2.seg_uid, o.seg_uid);
  EXPECT_EQ(o2.sr_uid, o.sr_uid);
  EXPECT_EQ(o2.key_uid, o.key_uid);
  TempDir other;
  EXPECT_NE(write_dicom_results(s.r, {"0123456789abcdef", "0000000000000000"}, other.str()).seg_uid, o.seg_uid);
}

TEST(DicomResults, AStudyWithoutUsableGeometryGetsAWarningAndNoObject) {
  TempDir src, out;
  Scored s = scored_study(src.str());
  s.r.warnings.push_back({warn::gantry_tilt, "tilted"});
  EXPECT_NE(dicom_output_problem(s.r).find("gantry tilt"), std::string::npos);
  DicomResultsWriter w(out.str(), {"a", "b"});
  w.study(s.r);
  const Warnings ws = w.take_warnings();
  ASSERT_EQ(ws.size(), 1u);
  EXPECT_EQ(ws[0].code, warn::dicom_out_skipped);
  EXPECT_TRUE(w.take_warnings().empty());
  EXPECT_FALSE(fs::exists(fs::path(out.str()) / s.r.study_uid));

  Scored fewer = scored_study((fs::path(src.str()) / "b").string());
  fewer.r.sources.pop_back();  // a slice without its source image
  EXPECT_NE(dicom_output_problem(fewer.r), "");
  EXPECT_THROW(write_dicom_results(fewer.r, {"a", "b"}, out.str()), DicomSkipped);
  EXPECT_FALSE(fs::exists(fs::path(out.str()) / fewer.r.study_uid));
}

TEST(DicomResults, ASourceFromAnotherStudyIsRefused) {
  TempDir src, out;
  Scored s = scored_study(src.str());
  edit_dicom_file(s.r.source_files.front(), [](DcmDataset& d) { d.putAndInsertString(DCM_StudyInstanceUID, "1.2.3.4"); });
  EXPECT_THROW(write_dicom_results(s.r, {"a", "b"}, out.str()), DicomSkipped);
  EXPECT_FALSE(fs::exists(fs::path(out.str()) / s.r.study_uid));
}
