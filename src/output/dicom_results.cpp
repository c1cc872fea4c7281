// `cspine predict --dicom-out`: a DICOM Segmentation (dcmseg), a Comprehensive SR (dcmsr) and a secondary capture
// (dcmdata) per scored study. See dicom_results.h and docs/pacs.md; nothing here encodes DICOM by hand.
#include "output/dicom_results.h"

#include <dcmtk/config/osconfig.h>  // first

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmfg/fgderimg.h>
#include <dcmtk/dcmiod/cielabutil.h>
#include <dcmtk/dcmfg/fgfracon.h>
#include <dcmtk/dcmfg/fgpixmsr.h>
#include <dcmtk/dcmfg/fgplanor.h>
#include <dcmtk/dcmfg/fgplanpo.h>
#include <dcmtk/dcmiod/iodreferences.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segment.h>
#include <dcmtk/dcmsr/dsrdoc.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "cspine/error.h"
#include "cspine/runtime.h"
#include "cspine/vertebrae.h"
#include "synth/random.h"
#include "util/atomic_file.h"
#include "util/log.h"

namespace fs = std::filesystem;

namespace cspine {

namespace {

const char* const kDisclaimer = "cspine, research use only, not for diagnosis";
const char* const kManufacturer = "cspine";

// SNOMED CT codes of C1..C7 (DICOM CID 7603 "Vertebra").
struct Code {
  const char *value, *scheme, *meaning;
};
const Code kVertebraCodes[7] = {{"14806007", "SCT", "C1 vertebra"},  {"39976000", "SCT", "C2 vertebra"},
                                {"113205007", "SCT", "C3 vertebra"}, {"5329002", "SCT", "C4 vertebra"},
                                {"36978003", "SCT", "C5 vertebra"},  {"36054005", "SCT", "C6 vertebra"},
                                {"87391001", "SCT", "C7 vertebra"}};
const Code kAnatomicalStructure{"91723000", "SCT", "Anatomical Structure"};  // CID 7150
const Code kFindingSite{"363698007", "SCT", "Finding Site"};
const Code kFracture{"125605004", "SCT", "Fracture of bone"};
const Code kYes{"373066001", "SCT", "Yes"}, kNo{"373067005", "SCT", "No"};
const Code kReportTitle{"18748-4", "LN", "Diagnostic imaging report"};
const Code kUnitless{"1", "UCUM", "no units"};
// Concepts with no standard code: a private scheme, declared in the SR's Coding Scheme Identification Sequence.
const char* const kPrivateScheme = "99CSPINE";
const Code kProbability{"FRACPROB", kPrivateScheme, "Fracture probability"};
const Code kPatientProbability{"PATPROB", kPrivateScheme, "Cervical spine fracture probability (patient)"};
const Code kPredicted{"PREDFRAC", kPrivateScheme, "Predicted fractured at threshold"};
const Code kThreshold{"THRESHOLD", kPrivateScheme, "Decision threshold"};
const Code kFallback{"FALLBACK", kPrivateScheme, "Fallback (prior reported)"};
const Code kKeySlice{"KEYSLICE", kPrivateScheme, "Key slice (highest attention)"};
const Code kVertebraResult{"VERTRESULT", kPrivateScheme, "Vertebra result"};
const Code kModels{"MODELS", kPrivateScheme, "Models (FNV-1a 64 fingerprints)"};
const Code kNote{"NOTE", kPrivateScheme, "Note"};

// Vertebra colours of the key image and the SEG's recommended display (RGB).
// (No red: red marks a vertebra predicted fractured on the key image.)
const uint8_t kColors[7][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {188, 189, 34},
                               {148, 103, 189}, {140, 86, 75},  {227, 119, 194}};

uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// A UID under the 2.25 arc (as synth's), the same for the same study, series, models and kind.
std::string result_uid(const StudyResult& r, const DicomModels& m, const std::string& kind) {
  const std::string key = r.study_uid + "|" + r.series_uid + "|" + m.seg_fingerprint + "|" + m.cls_fingerprint + "|" + kind;
  return synth::derived_uid(fnv1a(key), fnv1a(key, 0x84222325cbf29ce4ull));
}

std::string ds(double v, const char* fmt = "%.6f") {
  char b[32];
  std::snprintf(b, sizeof b, fmt, v);
  std::string s = b;
  if (s == "-0.000000") s = "0.000000";
  return s;
}

std::string now(const char* fmt) {
  const auto t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, fmt, &tm);
  return b;
}

void check(const OFCondition& c, const std::string& what) {
  if (c.bad()) throw DicomSkipped(what + ": " + c.text());
}

// The first source image's header: the patient and study the objects belong to.
struct SourceHeader {
  DcmFileFormat file;
  DcmDataset* ds = nullptr;
  std::string get(const DcmTagKey& tag) {
    OFString v;
    return ds->findAndGetOFStringArray(tag, v).good() ? std::string(v.c_str()) : std::string();
  }
};

void read_source(const StudyResult& r, SourceHeader& h) {
  if (r.source_files.empty()) throw DicomSkipped("no source file");
  const std::string& path = r.source_files.front();
  check(h.file.loadFileUntilTag(path.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect,
                                DCM_PixelData),
        "cannot read the source image " + path);
  h.ds = h.file.getDataset();
  if (h.get(DCM_StudyInstanceUID) != r.study_uid)
    throw DicomSkipped("the source image " + path + " does not belong to study " + r.study_uid);
  if (h.get(DCM_SOPInstanceUID) != r.sources.front().sop_instance_uid)
    throw DicomSkipped("the source image " + path + " is not the series' first slice");
  if (h.get(DCM_FrameOfReferenceUID).empty()) throw DicomSkipped("the source images have no FrameOfReferenceUID");
}

// Patient and study attributes copied from the source (type 2 ones created empty when the source lacks them).
void copy_patient_study(DcmDataset& src, DcmDataset& dst) {
  const DcmTagKey type2[] = {DCM_PatientName,  DCM_PatientID, DCM_PatientBirthDate,        DCM_PatientSex,
                             DCM_StudyDate,    DCM_StudyTime, DCM_ReferringPhysicianName, DCM_StudyID,
                             DCM_AccessionNumber};
  const DcmTagKey optional[] = {DCM_SpecificCharacterSet, DCM_IssuerOfPatientID, DCM_StudyDescription,
                                DCM_PatientAge, DCM_StudyInstanceUID};
  auto copy = [&](const DcmTagKey& tag, bool create) {
    DcmElement* e = nullptr;
    if (src.findAndGetElement(tag, e).good() && e) {
      dst.insert(OFstatic_cast(DcmElement*, e->clone()), OFTrue);
    } else if (create) {
      dst.insertEmptyElement(tag, OFTrue);
    } else {
      dst.findAndDeleteElement(tag);
    }
  };
  for (const auto& t : type2) copy(t, true);
  for (const auto& t : optional) copy(t, false);
}

void common_series(DcmDataset& d, const std::string& series_uid, const std::string& sop_uid, const char* series_number,
                   const std::string& description) {
  d.putAndInsertString(DCM_SeriesInstanceUID, series_uid.c_str());
  d.putAndInsertString(DCM_SOPInstanceUID, sop_uid.c_str());
  d.putAndInsertString(DCM_SeriesNumber, series_number);
  d.putAndInsertString(DCM_InstanceNumber, "1");
  d.putAndInsertString(DCM_SeriesDescription, description.c_str());
  d.putAndInsertString(DCM_Manufacturer, kManufacturer);
  d.putAndInsertString(DCM_SoftwareVersions, version().c_str());
}

void save(DcmFileFormat& ff, const std::string& path) {
  write_atomically(path, [&](const std::string& tmp) {
    const OFCondition c = ff.saveFile(tmp.c_str(), EXS_LittleEndianExplicit, EET_ExplicitLength, EGL_recalcGL,
                                      EPD_noChange, 0, 0, EWM_createNewMeta);
    if (c.bad()) throw OutputError("cannot write " + path + ": " + c.text());
  });
}

std::string models_text(const DicomModels& m) {
  return "seg " + m.seg_fingerprint + " cls " + m.cls_fingerprint;
}

// ---------------------------------------------------------------------------------------------------------------
// Segmentation

void write_seg(const StudyResult& r, const DicomModels& m, const std::vector<uint8_t>& labels, SourceHeader& src,
               const std::string& path, DicomObjects& out) {
  const int cols = r.geometry.size[0], rows = r.geometry.size[1], slices = r.geometry.size[2];
  const std::size_t plane = static_cast<std::size_t>(cols) * static_cast<std::size_t>(rows);
  IODGeneralEquipmentModule::EquipmentInfo equipment(kManufacturer, kManufacturer, "1", version().c_str());
  ContentIdentificationMacro content("1", "CSPINE", ("C1-C7 " + models_text(m)).c_str(), "");
  DcmSegmentation* raw = nullptr;
  check(DcmSegmentation::createBinarySegmentation(raw, static_cast<Uint16>(rows), static_cast<Uint16>(cols), equipment,
                                                  content),
        "DcmSegmentation");
  std::unique_ptr<DcmSegmentation> seg(raw);
  check(seg->importFromSourceImage(*src.ds), "importing patient, study and frame of reference");
  seg->getSeries().setSeriesInstanceUID(result_uid(r, m, "seg-series").c_str());
  seg->getSeries().setSeriesNumber("9901");
  seg->getSeries().setSeriesDescription("cspine SEG C1-C7, research use only, not for diagnosis");
  seg->getSOPCommon().setSOPInstanceUID(result_uid(r, m, "seg-instance").c_str());

  // Shared: the CT grid's orientation and spacing.
  FGPlaneOrientationPatient orient;
  const auto a0 = r.geometry.axis(0), a1 = r.geometry.axis(1);
  check(orient.setImageOrientationPatient(ds(a0[0]).c_str(), ds(a0[1]).c_str(), ds(a0[2]).c_str(), ds(a1[0]).c_str(),
                                          ds(a1[1]).c_str(), ds(a1[2]).c_str()),
        "orientation");
  check(seg->addForAllFrames(orient), "orientation");
  FGPixelMeasures measures;
  check(measures.setPixelSpacing((ds(r.geometry.spacing[1]) + "\\" + ds(r.geometry.spacing[0])).c_str()), "spacing");
  check(measures.setSliceThickness(ds(r.geometry.spacing[2]).c_str()), "slice thickness");
  check(seg->addForAllFrames(measures), "pixel measures");

  const std::string dim_uid = result_uid(r, m, "seg-dimensions");
  IODMultiframeDimensionModule& dims = seg->getDimensions();
  check(dims.addDimensionIndex(DCM_ReferencedSegmentNumber, dim_uid.c_str(), DCM_SegmentIdentificationSequence,
                               "ReferencedSegmentNumber"),
        "dimension");
  check(dims.addDimensionIndex(DCM_ImagePositionPatient, dim_uid.c_str(), DCM_PlanePositionSequence,
                               "ImagePositionPatient"),
        "dimension");

  std::set<std::size_t> referenced;  // slices referenced by some frame
  std::vector<Uint8> frame(plane);
  for (std::size_t v = 0; v < kVertebrae; ++v) {
    const uint8_t label = static_cast<uint8_t>(v + 1);
    std::vector<int> with;  // slices holding the vertebra
    for (int k = 0; k < slices; ++k) {
      const uint8_t* p = labels.data() + static_cast<std::size_t>(k) * plane;
      if (std::find(p, p + plane, label) != p + plane) with.push_back(k);
    }
    if (with.empty()) continue;
    const Code& c = kVertebraCodes[v];
    DcmSegment* segment = nullptr;
    check(DcmSegment::create(segment, kVertebraNames[v], CodeSequenceMacro(kAnatomicalStructure.value, "SCT", kAnatomicalStructure.meaning),
                             CodeSequenceMacro(c.value, c.scheme, c.meaning), DcmSegTypes::SAT_AUTOMATIC, "cspine"),
          "segment");
    std::unique_ptr<DcmSegment> owned(segment);
    check(segment->setSegmentDescription(c.meaning), "segment description");
    segment->getSegmentationAlgorithmIdentification().setAlgorithmVersion(version().c_str());
    check(segment->getSegmentationAlgorithmIdentification().setAlgorithmName("cspine"), "algorithm name");
    segment->getSegmentationAlgorithmIdentification().setAlgorithmParameters(models_text(m).c_str());
    // Algorithm family (CID 7162): "Artificial Intelligence".
    check(segment->getSegmentationAlgorithmIdentification().getAlgorithmFamilyCode().set("113037", "DCM",
                                                                                          "Learning Algorithm"),
          "algorithm family");
    double lab_l = 0, lab_a = 0, lab_b = 0;
    IODCIELabUtil::rgb2DicomLab(lab_l, lab_a, lab_b, kColors[v][0] / 255.0, kColors[v][1] / 255.0, kColors[v][2] / 255.0);
    segment->setRecommendedDisplayCIELabValue(static_cast<Uint16>(lab_l), static_cast<Uint16>(lab_a),
                                              static_cast<Uint16>(lab_b));
    Uint16 number = 0;
    check(seg->addSegment(segment, number), "adding segment");
    owned.release();  // the segmentation owns it now
    ++out.segments;

    for (int k : with) {
      const auto ks = static_cast<std::size_t>(k);
      const uint8_t* p = labels.data() + ks * plane;
      for (std::size_t i = 0; i < plane; ++i) frame[i] = p[i] == label ? 1 : 0;
      FGPlanePosPatient pos;
      const auto ipp = r.geometry.voxel_to_lps(0, 0, k);
      check(pos.setImagePositionPatient(ds(ipp[0], "%.5f").c_str(), ds(ipp[1], "%.5f").c_str(),
                                        ds(ipp[2], "%.5f").c_str()),
            "position");
      FGFrameContent content_fg;
      check(content_fg.setDimensionIndexValues(number, 0), "dimension index");
      check(content_fg.setDimensionIndexValues(static_cast<Uint32>(k + 1), 1), "dimension index");
      const SourceInstance& s = r.sources[ks];
      ImageSOPInstanceReferenceMacro* ref = nullptr;
      if (s.frame > 0)
        check(ImageSOPInstanceReferenceMacro::create(s.sop_class_uid.c_str(), s.sop_instance_uid.c_str(),
                                                     OFVector<Uint16>(1, static_cast<Uint16>(s.frame)), ref),
              "source reference");
      else
        check(ImageSOPInstanceReferenceMacro::create(s.sop_class_uid.c_str(), s.sop_instance_uid.c_str(), ref),
              "source reference");
      std::unique_ptr<ImageSOPInstanceReferenceMacro> ref_owned(ref);
      OFVector<ImageSOPInstanceReferenceMacro> refs;
      refs.push_back(*ref);
      std::unique_ptr<FGDerivationImage> derivation(
          DcmSegmentation::createDerivationImageFG(refs, "cspine vertebra segmentation"));
      if (!derivation) throw DicomSkipped("derivation image reference");
      OFVector<FGBase*> per_frame;
      per_frame.push_back(&pos);
      per_frame.push_back(&content_fg);
      per_frame.push_back(derivation.get());
      check(seg->addFrame(frame.data(), number, per_frame), "adding frame");
      referenced.insert(ks);
      ++out.seg_frames;
    }
  }
  if (out.segments == 0) throw DicomSkipped("no vertebra was segmented");

  // Common Instance Reference: the source series and every image a frame references.
  IODReferences references;
  const std::string patient_id = src.get(DCM_PatientID), source_series = src.get(DCM_SeriesInstanceUID);
  for (std::size_t k : referenced) {
    const SourceInstance& s = r.sources[k];
    OFVector<Uint32> frames;
    if (s.frame > 0) frames.push_back(static_cast<Uint32>(s.frame));
    auto* ref = new IODImageReference(patient_id.c_str(), r.study_uid.c_str(), source_series.c_str(),
                                      s.sop_instance_uid.c_str(), s.sop_class_uid.c_str(), frames);
    if (!references.add(ref)) delete ref;
  }
  seg->getCommonInstanceReference().addReferences(references, r.study_uid.c_str());

  DcmFileFormat ff;
  check(seg->writeDataset(*ff.getDataset()), "writing the segmentation");
  DcmDataset& d = *ff.getDataset();
  copy_patient_study(*src.ds, d);
  d.putAndInsertString(DCM_InstanceCreationDate, now("%Y%m%d").c_str());
  d.putAndInsertString(DCM_InstanceCreationTime, now("%H%M%S").c_str());
  save(ff, path);
  out.seg_uid = result_uid(r, m, "seg-instance");
}

// ---------------------------------------------------------------------------------------------------------------
// Structured report

DSRCodedEntryValue code(const Code& c) { return DSRCodedEntryValue(c.value, c.scheme, c.meaning); }

void write_sr(const StudyResult& r, const DicomModels& m, SourceHeader& src, const std::string& path, DicomObjects& out) {
  DSRDocument doc(DSRTypes::DT_ComprehensiveSR);
  check(doc.createNewSeriesInStudy(r.study_uid.c_str()), "SR series");
  doc.setSeriesDescription("cspine SR C1-C7 fractures, research use only, not for diagnosis");
  doc.setManufacturer(kManufacturer);
  doc.setSoftwareVersions(version().c_str());
  DSRDocumentTree& tree = doc.getTree();
  auto add = [&](DSRTypes::E_RelationshipType rel, DSRTypes::E_ValueType type, const Code& concept, bool child) {
    const OFCondition c = child ? tree.addChildContentItem(rel, type, code(concept))
                                : tree.addContentItem(rel, type, code(concept));
    check(c, std::string("SR item ") + concept.meaning);
    return &tree.getCurrentContentItem();
  };
  auto num = [&](double v, const char* fmt = "%.6f") { return DSRNumericMeasurementValue(ds(v, fmt).c_str(), code(kUnitless)); };
  if (tree.addContentItem(DSRTypes::RT_isRoot, DSRTypes::VT_Container) == 0) throw DicomSkipped("SR root");
  check(tree.getCurrentContentItem().setConceptName(code(kReportTitle)), "SR title");
  check(add(DSRTypes::RT_contains, DSRTypes::VT_Text, kNote, true)->setStringValue(kDisclaimer), "note");
  check(add(DSRTypes::RT_contains, DSRTypes::VT_Text, kModels, false)->setStringValue(models_text(m).c_str()), "models");
  check(add(DSRTypes::RT_contains, DSRTypes::VT_Num, kThreshold, false)->setNumericValue(num(kFractureThreshold, "%.2f")),
        "threshold");
  check(add(DSRTypes::RT_contains, DSRTypes::VT_Num, kPatientProbability, false)->setNumericValue(num(r.patient_overall)),
        "patient_overall");
  const std::string source_series = src.get(DCM_SeriesInstanceUID);
  for (std::size_t v = 0; v < kVertebrae; ++v) {
    const VertebraResult& vr = r.vertebrae[v];
    add(DSRTypes::RT_contains, DSRTypes::VT_Container, kVertebraResult, false);
    const Code& vc = kVertebraCodes[v];
    check(add(DSRTypes::RT_hasConceptMod, DSRTypes::VT_Code, kFindingSite, true)->setCodeValue(code(vc)), "site");
    check(add(DSRTypes::RT_contains, DSRTypes::VT_Num, kProbability, false)->setNumericValue(num(vr.probability)),
          "probability");
    check(add(DSRTypes::RT_contains, DSRTypes::VT_Code, kPredicted, false)
              ->setCodeValue(code(vr.probability >= kFractureThreshold ? kYes : kNo)),
          "predicted");
    if (vr.probability >= kFractureThreshold)
      check(add(DSRTypes::RT_contains, DSRTypes::VT_Code, kFracture, false)->setCodeValue(code(vc)), "finding");
    if (vr.fallback != Fallback::none)
      check(add(DSRTypes::RT_contains, DSRTypes::VT_Text, kFallback, false)->setStringValue(fallback_name(vr.fallback)),
            "fallback");
    if (vr.key >= 0) {
      const int k = vr.picked.at(static_cast<std::size_t>(vr.key));
      const SourceInstance& s = r.sources.at(static_cast<std::size_t>(k));
      DSRImageReferenceValue image(s.sop_class_uid.c_str(), s.sop_instance_uid.c_str());
      if (s.frame > 0) image.getFrameList().addItem(static_cast<Sint32>(s.frame));
      check(add(DSRTypes::RT_contains, DSRTypes::VT_Image, kKeySlice, false)->setImageReference(image), "key slice");
      check(doc.getCurrentRequestedProcedureEvidence().addItem(r.study_uid.c_str(), source_series.c_str(),
                                                               s.sop_class_uid.c_str(), s.sop_instance_uid.c_str()),
            "evidence");
    }
    tree.goUp();
  }
  doc.completeDocument();
  DcmFileFormat ff;
  check(doc.write(*ff.getDataset()), "writing the SR");
  DcmDataset& d = *ff.getDataset();
  copy_patient_study(*src.ds, d);
  common_series(d, result_uid(r, m, "sr-series"), result_uid(r, m, "sr-instance"), "9902",
                "cspine SR C1-C7 fractures, research use only, not for diagnosis");
  // The private coding scheme, declared (Coding Scheme Identification Sequence).
  DcmItem* item = nullptr;
  if (d.findOrCreateSequenceItem(DCM_CodingSchemeIdentificationSequence, item, -2).good() && item) {
    item->putAndInsertString(DCM_CodingSchemeDesignator, kPrivateScheme);
    item->putAndInsertString(DCM_CodingSchemeName, "cspine result concepts");
    item->putAndInsertString(DCM_CodingSchemeResponsibleOrganization, "cspine project");
  }
  save(ff, path);
  out.sr_uid = result_uid(r, m, "sr-instance");
}

// ---------------------------------------------------------------------------------------------------------------
// Key image (secondary capture)

// 5x7 glyphs (rows top to bottom, '1' = ink) for what the key image writes.
const std::map<char, const char*>& glyphs() {
  static const std::map<char, const char*> g = {
      {'0', "01110100011001110101110011000101110"}, {'1', "00100011000010000100001000010001110"},
      {'2', "01110100010000100010001000100011111"}, {'3', "11111000100010000010000011000101110"},
      {'4', "00010001100101010010111110001000010"}, {'5', "11111100001111000001000011000101110"},
      {'6', "00110010001000011110100011000101110"}, {'7', "11111000010001000100010000100001000"},
      {'8', "01110100011000101110100011000101110"}, {'9', "01110100011000101111000010001001100"},
      {'.', "00000000000000000000000000110001100"}, {'-', "00000000000000011111000000000000000"},
      {',', "00000000000000000000011000010001000"}, {':', "00000011000110000000011000110000000"},
      {'/', "00000000010001000100010001000000000"}, {' ', "00000000000000000000000000000000000"},
      {'A', "01110100011000111111100011000110001"}, {'B', "11110100011000111110100011000111110"},
      {'C', "01110100011000010000100001000101110"}, {'D', "11100100101000110001100011001011100"},
      {'E', "11111100001000011110100001000011111"}, {'F', "11111100001000011110100001000010000"},
      {'G', "01110100011000010111100011000101111"}, {'H', "10001100011000111111100011000110001"},
      {'I', "01110001000010000100001000010001110"}, {'K', "10001100101010011000101001001010001"},
      {'L', "10000100001000010000100001000011111"}, {'M', "10001110111010110101100011000110001"},
      {'N', "10001100011100110101100111000110001"}, {'O', "01110100011000110001100011000101110"},
      {'P', "11110100011000111110100001000010000"}, {'R', "11110100011000111110101001001010001"},
      {'S', "01111100001000001110000010000111110"}, {'T', "11111001000010000100001000010000100"},
      {'U', "10001100011000110001100011000101110"}, {'V', "10001100011000110001100010101000100"},
      {'W', "10001100011000110101101011010101010"}, {'X', "10001100010101000100010101000110001"},
      {'Y', "10001100010101000100001000010000100"},
  };
  return g;
}

struct Canvas {
  int w, h;
  std::vector<uint8_t> px;
  Canvas(int w_, int h_) : w(w_), h(h_), px(static_cast<std::size_t>(w_) * h_ * 3, 0) {}
  void set(int x, int y, const uint8_t* c, double alpha = 1.0) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    uint8_t* p = px.data() + (static_cast<std::size_t>(y) * w + x) * 3;
    for (int i = 0; i < 3; ++i) p[i] = static_cast<uint8_t>(std::lround(p[i] * (1 - alpha) + c[i] * alpha));
  }
  int text(int x, int y, const std::string& s, const uint8_t* c, int scale = 2) {
    const auto& g = glyphs();
    int cx = x;
    for (char ch : s) {
      auto it = g.find(static_cast<char>(std::toupper(static_cast<unsigned char>(ch))));
      const char* b = it == g.end() ? g.at(' ') : it->second;
      for (int row = 0; row < 7; ++row)
        for (int col = 0; col < 5; ++col)
          if (b[row * 5 + col] == '1')
            for (int dy = 0; dy < scale; ++dy)
              for (int dx = 0; dx < scale; ++dx) set(cx + col * scale + dx, y + row * scale + dy, c);
      cx += 6 * scale;
    }
    return cx - x;
  }
};

uint8_t bone_window(int16_t hu) {
  const double lo = 400 - 900, hi = 400 + 900;  // level 400, width 1800
  return static_cast<uint8_t>(std::clamp((hu - lo) / (hi - lo) * 255.0, 0.0, 255.0));
}

}  // namespace

RgbImage render_key_image(const StudyResult& r, const Volume& ct, const std::vector<uint8_t>& labels) {
  const int cols = ct.size[0], rows = ct.size[1], slices = ct.size[2];
  const std::size_t plane = static_cast<std::size_t>(cols) * static_cast<std::size_t>(rows);
  const int panel = 512, header = 40, label_w = 230;
  // Mid-sagittal: the column through the middle of the vertebrae found (the volume's middle when none).
  double sum_x = 0;
  int n_x = 0;
  for (const auto& v : r.vertebrae)
    if (v.extent) sum_x += (v.extent->x0 + v.extent->x1) / 2.0, ++n_x;
  const int mid = std::clamp(n_x ? static_cast<int>(std::lround(sum_x / n_x)) : cols / 2, 0, cols - 1);
  // Head at the top: slices ordered by their patient z, highest first.
  std::vector<int> order(static_cast<std::size_t>(slices));
  for (int k = 0; k < slices; ++k) order[static_cast<std::size_t>(k)] = k;
  std::vector<double> z(static_cast<std::size_t>(slices));
  for (int k = 0; k < slices; ++k) z[static_cast<std::size_t>(k)] = ct.voxel_to_lps(0, 0, k)[2];
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return z[a] > z[b]; });
  const double height_mm = std::max(1e-3, std::abs(z.back() - z.front()) + ct.spacing[2]);
  const double width_mm = rows * ct.spacing[1];
  const double scale = panel / std::max(height_mm, width_mm);
  const int sag_w = std::max(1, static_cast<int>(std::lround(width_mm * scale)));
  const int sag_h = std::max(1, static_cast<int>(std::lround(height_mm * scale)));

  // The most suspicious vertebra with a key slice.
  int best = -1;
  for (std::size_t v = 0; v < kVertebrae; ++v) {
    const auto& vr = r.vertebrae[v];
    if (vr.fallback == Fallback::none && vr.key >= 0 &&
        (best < 0 || vr.probability > r.vertebrae[static_cast<std::size_t>(best)].probability))
      best = static_cast<int>(v);
  }
  const double ax_scale = panel / static_cast<double>(std::max(cols, rows) * 1.0) *
                          std::min(1.0, 1.0);  // square pixels assumed in plane (spacing[0] ~ spacing[1])
  const int ax_w = static_cast<int>(std::lround(cols * ax_scale)), ax_h = static_cast<int>(std::lround(rows * ax_scale));
  Canvas cv(sag_w + label_w + 8 + ax_w, header + std::max(sag_h, ax_h + 24));
  const uint8_t white[3] = {255, 255, 255}, red[3] = {255, 70, 60}, yellow[3] = {255, 220, 60}, grey[3] = {170, 170, 170};

  // Sagittal panel: horizontal = rows (j), vertical = patient z.
  for (int y = 0; y < sag_h; ++y) {
    const double zmm = (y + 0.5) / scale;  // mm below the top
    const int pos = std::clamp(static_cast<int>(zmm / height_mm * slices), 0, slices - 1);
    const int k = order[static_cast<std::size_t>(pos)];
    for (int x = 0; x < sag_w; ++x) {
      const int j = std::clamp(static_cast<int>((x + 0.5) / scale / ct.spacing[1]), 0, rows - 1);
      const std::size_t idx = static_cast<std::size_t>(k) * plane + static_cast<std::size_t>(j) * cols + mid;
      const uint8_t g = bone_window(ct.hu[idx]);
      const uint8_t gray[3] = {g, g, g};
      cv.set(x, header + y, gray);
      const uint8_t l = labels[idx];
      if (l >= 1 && l <= 7) cv.set(x, header + y, kColors[l - 1], 0.4);
    }
  }
  // Labels beside the vertebrae, at their height.
  int last_y = -100;
  for (std::size_t v = 0; v < kVertebrae; ++v) {
    const auto& vr = r.vertebrae[v];
    int y = header + 4 + static_cast<int>(v) * 22;  // not found: listed in order at the top
    if (vr.extent) {
      const double zc = (z[static_cast<std::size_t>(vr.extent->z0)] + z[static_cast<std::size_t>(vr.extent->z1)]) / 2;
      const double top = z[static_cast<std::size_t>(order.front())] + ct.spacing[2] / 2;
      y = header + static_cast<int>(std::lround((top - zc) * scale)) - 7;
    }
    y = std::max(y, last_y + 18);
    last_y = y;
    const bool positive = vr.probability >= kFractureThreshold;
    const std::string s = std::string(kVertebraNames[v]) + " " + ds(vr.probability, "%.3f");
    const int w = cv.text(sag_w + 6, y, s, vr.fallback != Fallback::none ? grey : positive ? red : kColors[v]);
    if (vr.fallback != Fallback::none)
      cv.text(sag_w + 6 + w, y, " PRIOR", grey);
    else if (positive)
      cv.text(sag_w + 6 + w, y, " FRACTURE", red);
  }
  // Axial panel: the key slice of the most suspicious vertebra.
  const int ax_x = sag_w + label_w + 8;
  if (best >= 0) {
    const auto& vr = r.vertebrae[static_cast<std::size_t>(best)];
    const int k = vr.picked.at(static_cast<std::size_t>(vr.key));
    for (int y = 0; y < ax_h; ++y)
      for (int x = 0; x < ax_w; ++x) {
        const int i = std::clamp(static_cast<int>(x / ax_scale), 0, cols - 1), j = std::clamp(static_cast<int>(y / ax_scale), 0, rows - 1);
        const std::size_t idx = static_cast<std::size_t>(k) * plane + static_cast<std::size_t>(j) * cols + i;
        const uint8_t g = bone_window(ct.hu[idx]);
        const uint8_t gray[3] = {g, g, g};
        cv.set(ax_x + x, header + y, gray);
        if (labels[idx] == best + 1) cv.set(ax_x + x, header + y, kColors[best], 0.35);
      }
    cv.text(ax_x + 4, header + ax_h + 6,
            std::string("KEY SLICE ") + kVertebraNames[static_cast<std::size_t>(best)] + " IMAGE " +
                std::to_string(r.slice_numbers.at(static_cast<std::size_t>(k))),
            yellow);
  } else {
    cv.text(ax_x + 4, header + 8, "NO KEY SLICE", grey);
  }
  cv.text(6, 4, "CSPINE RESEARCH USE ONLY, NOT FOR DIAGNOSIS", yellow);
  cv.text(6, 22, "PATIENT " + ds(r.patient_overall, "%.3f") + "  THRESHOLD " + ds(kFractureThreshold, "%.2f"),
          r.patient_overall >= kFractureThreshold ? red : white);
  return {cv.w, cv.h, std::move(cv.px)};
}

namespace {

void write_key_image(const StudyResult& r, const DicomModels& m, const std::vector<uint8_t>& labels, SourceHeader& src,
                     const std::string& path, DicomObjects& out) {
  if (!r.ct || r.ct->hu.size() != labels.size()) throw DicomSkipped("the CT volume is not available for the key image");
  const RgbImage img = render_key_image(r, *r.ct, labels);
  DcmFileFormat ff;
  DcmDataset& d = *ff.getDataset();
  copy_patient_study(*src.ds, d);
  const std::string uid = result_uid(r, m, "key-instance");
  d.putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
  common_series(d, result_uid(r, m, "key-series"), uid, "9903", "cspine key image, research use only, not for diagnosis");
  d.putAndInsertString(DCM_Modality, "OT");
  d.putAndInsertString(DCM_ImageLaterality, "U");  // unpaired (the neck); Laterality stays absent
  d.putAndInsertString(DCM_ConversionType, "WSD");
  d.putAndInsertString(DCM_SecondaryCaptureDeviceManufacturer, kManufacturer);
  d.putAndInsertString(DCM_SecondaryCaptureDeviceSoftwareVersions, version().c_str());
  d.putAndInsertString(DCM_ImageType, "DERIVED\\SECONDARY");
  d.putAndInsertString(DCM_PatientOrientation, "");
  d.putAndInsertString(DCM_ContentDate, now("%Y%m%d").c_str());
  d.putAndInsertString(DCM_ContentTime, now("%H%M%S").c_str());
  d.putAndInsertString(DCM_InstanceCreationDate, now("%Y%m%d").c_str());
  d.putAndInsertString(DCM_InstanceCreationTime, now("%H%M%S").c_str());
  d.putAndInsertString(DCM_BurnedInAnnotation, "NO");
  d.putAndInsertString(DCM_LossyImageCompression, "00");
  d.putAndInsertString(DCM_DerivationDescription,
                       "mid-sagittal reformat with the vertebrae tinted and their fracture probabilities; key slice of "
                       "the most suspicious vertebra");
  d.putAndInsertString(DCM_ImageComments, (std::string(kDisclaimer) + "; models " + models_text(m)).c_str());
  d.putAndInsertUint16(DCM_SamplesPerPixel, 3);
  d.putAndInsertString(DCM_PhotometricInterpretation, "RGB");
  d.putAndInsertUint16(DCM_PlanarConfiguration, 0);
  d.putAndInsertUint16(DCM_Rows, static_cast<Uint16>(img.height));
  d.putAndInsertUint16(DCM_Columns, static_cast<Uint16>(img.width));
  d.putAndInsertUint16(DCM_BitsAllocated, 8);
  d.putAndInsertUint16(DCM_BitsStored, 8);
  d.putAndInsertUint16(DCM_HighBit, 7);
  d.putAndInsertUint16(DCM_PixelRepresentation, 0);
  check(d.putAndInsertUint8Array(DCM_PixelData, img.rgb.data(), static_cast<unsigned long>(img.rgb.size())),
        "key image pixels");
  save(ff, path);
  out.key_uid = uid;
}

}  // namespace

std::string dicom_output_problem(const StudyResult& r) {
  const Volume& g = r.geometry;
  const std::size_t slices = static_cast<std::size_t>(std::max(0, g.size[2]));
  if (g.size[0] <= 0 || g.size[1] <= 0 || slices == 0) return "the CT grid is empty";
  if (g.size[0] > 65535 || g.size[1] > 65535) return "the CT slices are too large for a DICOM frame";
  if (r.sources.size() != slices || r.source_files.size() != slices)
    return "the volume's slices do not map one to one onto source images";
  for (const auto& s : r.sources)
    if (s.sop_instance_uid.empty() || s.sop_class_uid.empty()) return "a slice's source image has no SOP instance UID";
  for (const auto& w : r.warnings)
    if (w.code == warn::gantry_tilt) return "the slices were resampled for a gantry tilt: no frame matches a source image";
  for (double s : g.spacing)
    if (!(s > 0) || !std::isfinite(s)) return "the CT spacing is not usable";
  for (int a = 0; a < 3; ++a) {
    const auto v = g.axis(a);
    const double n = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    if (!(std::abs(n - 1) < 1e-3)) return "the CT orientation is not usable";
  }
  return "";
}

DicomObjects write_dicom_results(const StudyResult& r, const DicomModels& models, const std::string& dir) {
  if (const std::string why = dicom_output_problem(r); !why.empty()) throw DicomSkipped(why);
  SourceHeader src;
  read_source(r, src);
  const std::vector<uint8_t> labels = r.label_map();
  if (labels.size() != r.geometry.voxel_count()) throw DicomSkipped("the label map does not match the CT grid");
  DicomObjects out;
  out.dir = (fs::path(dir) / r.study_uid).string();
  std::error_code ec;
  fs::create_directories(out.dir, ec);
  if (!fs::is_directory(out.dir, ec)) throw OutputError("cannot create the folder '" + out.dir + "'");
  out.seg_path = (fs::path(out.dir) / "seg.dcm").string();
  out.sr_path = (fs::path(out.dir) / "sr.dcm").string();
  out.key_path = (fs::path(out.dir) / "key.dcm").string();
  // Each object is built in memory before its file appears; a study gets all three or a warning naming what is
  // missing (a SEG needs at least one vertebra; the SR and the key image are written in any case).
  std::string skipped;
  try {
    write_seg(r, models, labels, src, out.seg_path, out);
  } catch (const DicomSkipped& e) {
    out.seg_path.clear();
    skipped = std::string("no SEG: ") + e.what();
  }
  write_sr(r, models, src, out.sr_path, out);
  write_key_image(r, models, labels, src, out.key_path, out);
  if (!skipped.empty()) throw DicomSkipped(skipped + " (the SR and the key image were written)");
  return out;
}

void DicomResultsWriter::study(const StudyResult& r) {
  try {
    const DicomObjects o = write_dicom_results(r, models_, dir_);
    CSPINE_DEBUG("study {}: DICOM results in {} (SEG {} segments, {} frames; SR; key image)", r.study_uid, o.dir,
                 o.segments, o.seg_frames);
  } catch (const DicomSkipped& e) {
    const std::string msg = std::string("--dicom-out: ") + e.what();
    log_warn("study " + r.study_uid + ": " + msg);
    warnings_.push_back({warn::dicom_out_skipped, msg});
  }
}

Warnings DicomResultsWriter::take_warnings() {
  Warnings w;
  w.swap(warnings_);
  return w;
}

}  // namespace cspine
