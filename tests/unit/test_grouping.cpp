// Grouping files into studies and series and choosing the series to score.
#include <gtest/gtest.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>

#include <fstream>

#include "cspine/error.h"
#include "support/fixtures.h"

using namespace cspine;
using namespace cspine::test;

namespace {
const SeriesInfo* find_series(const StudyInfo& st, const std::string& uid) {
  for (const auto& s : st.series)
    if (s.series_uid == uid) return &s;
  return nullptr;
}
}  // namespace

TEST(Grouping, KaggleLayoutGivesOneStudyPerFolder) {
  TempDir tmp;
  SeriesSpec a, b;
  a.slices = 4;
  b.slices = 5;
  const auto wa = write_series(tmp / "1.2.3", a);
  const auto wb = write_series(tmp / "1.2.4", b);
  const StudyIndex index = scan_studies(tmp.str());
  ASSERT_EQ(index.studies.size(), 2u);
  EXPECT_EQ(index.dicom_files, 9u);
  for (const auto& st : index.studies) {
    ASSERT_EQ(st.series.size(), 1u);
    EXPECT_TRUE(st.series[0].selected);
    EXPECT_EQ(st.selected_series, 0);
    const auto& expected = st.study_uid == wa.study_uid ? wa : wb;
    EXPECT_EQ(st.study_uid, expected.study_uid);
    EXPECT_EQ(st.series[0].slices.size(), expected.files.size());
  }
}

TEST(Grouping, ChoosesAxialCtWithMostSlicesAndSaysWhy) {
  TempDir tmp;
  const std::string study = make_uid();
  SeriesSpec axial;  // 6 slices
  axial.study_uid = study;
  axial.slices = 6;
  axial.series_number = 3;
  const auto w_axial = write_series(tmp / "axial", axial);

  SeriesSpec thin = axial;  // fewer slices: eligible, not chosen
  thin.slices = 3;
  thin.series_number = 2;
  thin.series_uid = "";
  const auto w_thin = write_series(tmp / "thin", thin);

  SeriesSpec sag = axial;  // more slices but sagittal: not eligible
  sag.slices = 9;
  sag.series_uid = "";
  sag.orientation = {0, 1, 0, 0, 0, -1};
  const auto w_sag = write_series(tmp / "sag", sag);

  SeriesSpec scout = axial;  // localizer
  scout.slices = 12;
  scout.series_uid = "";
  scout.image_type = {"ORIGINAL", "PRIMARY", "LOCALIZER"};
  const auto w_scout = write_series(tmp / "scout", scout);

  // A screen capture of the same study.
  CtSliceSpec sc;
  sc.study_uid = study;
  sc.series_uid = make_uid();
  sc.rows = sc.columns = 16;
  sc.sop_class_uid = "1.2.840.10008.5.1.4.1.1.7";
  sc.modality = "OT";
  for (int i = 0; i < 20; ++i) {
    sc.position = {0, 0, static_cast<double>(i)};
    write_ct_slice(tmp / ("sc" + std::to_string(i)), sc, std::vector<int16_t>(256, 0));
  }

  const StudyIndex index = scan_studies(tmp.str());
  ASSERT_EQ(index.studies.size(), 1u);
  const StudyInfo& st = index.studies[0];
  ASSERT_EQ(st.series.size(), 5u);
  ASSERT_GE(st.selected_series, 0);
  EXPECT_EQ(st.series[static_cast<std::size_t>(st.selected_series)].series_uid, w_axial.series_uid);
  EXPECT_NE(st.selection_reason.find("6 images"), std::string::npos) << st.selection_reason;
  EXPECT_NE(find_series(st, w_sag.series_uid)->eligibility.find("not axial"), std::string::npos);
  EXPECT_NE(find_series(st, w_scout.series_uid)->eligibility.find("localizer"), std::string::npos);
  EXPECT_NE(find_series(st, sc.series_uid)->eligibility.find("secondary capture"), std::string::npos);
  EXPECT_TRUE(find_series(st, w_thin.series_uid)->eligibility.empty());
  EXPECT_FALSE(find_series(st, w_thin.series_uid)->selected);
}

TEST(Grouping, NonDicomFilesAreSkippedQuietly) {
  TempDir tmp;
  SeriesSpec spec;
  spec.slices = 3;
  write_series(tmp / "s", spec);
  std::ofstream(tmp / "s/readme.txt") << "not an image\n";
  std::ofstream(tmp / "s/.DS_Store") << std::string(200, '\0');
  std::ofstream(tmp / "s/thumbnail.dcm") << "\x89PNG....";
  const StudyIndex index = scan_studies(tmp.str());
  EXPECT_EQ(index.files_seen, 6u);
  EXPECT_EQ(index.dicom_files, 3u);
  EXPECT_EQ(index.skipped_files, 0u);
  ASSERT_EQ(index.studies.size(), 1u);
}

TEST(Grouping, MissingUidsFallBackToFolderAndGeometry) {
  TempDir tmp;
  for (const std::string folder : {"a", "b"}) {
    CtSliceSpec s;  // empty study and series UIDs
    s.rows = s.columns = 8;
    for (int k = 0; k < 3; ++k) {
      s.position = {0, 0, k * 2.0};
      s.instance_number = k + 1;
      fs::create_directories(tmp.path() / folder);
      write_ct_slice(tmp / (folder + "/" + std::to_string(k)), s, std::vector<int16_t>(64, 0));
    }
  }
  const StudyIndex index = scan_studies(tmp.str());
  ASSERT_EQ(index.studies.size(), 2u);
  for (const auto& st : index.studies) {
    ASSERT_EQ(st.series.size(), 1u);
    EXPECT_EQ(st.series[0].slices.size(), 3u);
    EXPECT_GE(st.selected_series, 0);
    bool warned = false;
    for (const auto& w : st.series[0].warnings) warned |= w.code == warn::missing_uid;
    EXPECT_TRUE(warned);
  }
}

TEST(Grouping, LocalizerInsideAnAxialSeriesIsLeftOut) {
  TempDir tmp;
  SeriesSpec spec;
  spec.slices = 4;
  const auto w = write_series(tmp / "s", spec);
  CtSliceSpec scout;
  scout.study_uid = w.study_uid;
  scout.series_uid = w.series_uid;  // same series UID, as some scanners do
  scout.rows = scout.columns = 32;
  scout.orientation = {1, 0, 0, 0, 0, -1};
  scout.image_type = {"ORIGINAL", "PRIMARY", "LOCALIZER"};
  write_ct_slice(tmp / "s/scout", scout, std::vector<int16_t>(32 * 32, 0));
  const StudyIndex index = scan_studies(tmp.str());
  ASSERT_EQ(index.studies.size(), 1u);
  const auto& s = index.studies[0].series[0];
  EXPECT_EQ(s.slices.size(), 4u);
  EXPECT_TRUE(s.eligibility.empty()) << s.eligibility;
  ASSERT_FALSE(s.warnings.empty());
  EXPECT_EQ(s.warnings[0].code, warn::mixed_series);
}

// One slice of another matrix size is left out with a warning naming it (issue 14: it used to make the whole
// series unusable); the rest of the series is scored.
TEST(Grouping, OddMatrixSizeSliceIsLeftOutNamingTheFile) {
  TempDir tmp;
  SeriesSpec spec;
  spec.slices = 3;
  const auto w = write_series(tmp / "s", spec);
  CtSliceSpec odd;
  odd.study_uid = w.study_uid;
  odd.series_uid = w.series_uid;
  odd.rows = odd.columns = 16;
  odd.position = {-10, -12, 40};
  write_ct_slice(tmp / "s/odd.dcm", odd, std::vector<int16_t>(256, 0));
  const StudyIndex index = scan_studies(tmp.str());
  const auto& st = index.studies.at(0);
  EXPECT_EQ(st.selected_series, 0);
  EXPECT_TRUE(st.series[0].eligibility.empty()) << st.series[0].eligibility;
  ASSERT_EQ(st.series[0].slices.size(), 3u);
  bool named = false;
  for (const auto& w : st.series[0].warnings)
    named |= w.code == warn::mixed_series && w.message.find("odd.dcm") != std::string::npos &&
             w.message.find("16x16") != std::string::npos;
  EXPECT_TRUE(named);
  EXPECT_EQ(load_study(index, "").volume.size[2], 3);
}

TEST(Grouping, MissingPathAndEmptyFolderAreDistinctErrors) {
  TempDir tmp;
  EXPECT_THROW(scan_studies(tmp / "nope"), InputError);
  std::ofstream(tmp / "notes.txt") << "hello";
  EXPECT_THROW(scan_studies(tmp.str()), NoDicomError);
}

TEST(Grouping, DicomdirIsNotAStudy) {
  TempDir tmp;
  SeriesSpec spec;
  spec.slices = 3;
  write_series(tmp / "export", spec);
  // A minimal DICOMDIR: Media Storage Directory SOP class, a record sequence, no StudyInstanceUID.
  DcmFileFormat dir;
  DcmMetaInfo* meta = dir.getMetaInfo();
  const Uint8 version[] = {0, 1};
  meta->putAndInsertUint8Array(DCM_FileMetaInformationVersion, version, 2);
  meta->putAndInsertString(DCM_MediaStorageSOPClassUID, UID_MediaStorageDirectoryStorage);
  meta->putAndInsertString(DCM_MediaStorageSOPInstanceUID, make_uid().c_str());
  meta->putAndInsertString(DCM_TransferSyntaxUID, UID_LittleEndianExplicitTransferSyntax);
  meta->putAndInsertString(DCM_ImplementationClassUID, OFFIS_IMPLEMENTATION_CLASS_UID);
  dir.getDataset()->putAndInsertString(DCM_FileSetID, "EXPORT");
  dir.getDataset()->insertEmptyElement(DCM_DirectoryRecordSequence);
  ASSERT_TRUE(dir.saveFile((tmp / "export/DICOMDIR").c_str(), EXS_LittleEndianExplicit, EET_ExplicitLength,
                           EGL_recalcGL, EPD_noChange, 0, 0, EWM_dontUpdateMeta)
                  .good());
  ASSERT_EQ(read_slice_headers(tmp / "export/DICOMDIR").at(0).sop_class_uid, UID_MediaStorageDirectoryStorage);
  const StudyIndex index = scan_studies(tmp.str());
  ASSERT_EQ(index.studies.size(), 1u);
  EXPECT_EQ(index.dicom_files, 3u);
  EXPECT_EQ(load_study(index, "").volume.size[2], 3);
}
