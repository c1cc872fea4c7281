// `cspine predict --dicom-out DIR`: the results as DICOM objects in the scored study, for a PACS and the viewer a
// radiologist already uses (docs/pacs.md). Per study, in DIR/<StudyInstanceUID>/:
//   seg.dcm  a binary DICOM Segmentation (DCMTK dcmseg): one segment per vertebra found, C1..C7 coded with SNOMED CT
//            (CID 7603), one frame per slice that holds the vertebra, each referencing its source CT image;
//   sr.dcm   a Comprehensive SR (DCMTK dcmsr): per vertebra the probability, fractured at the threshold or not, the
//            fallback, a reference to the key slice; patient_overall; the models' fingerprints;
//   key.dcm  a secondary capture (RGB): a mid-sagittal reformat with the vertebrae tinted and their probabilities
//            beside them, and the key slice of the most suspicious vertebra.
// Every object keeps the source's StudyInstanceUID and patient module; series and instance UIDs are derived (2.25
// arc) from the study, the series scored, the models' fingerprints and the object's kind, so a second run of the
// same models gives the same UIDs and a PACS stores nothing twice. Written atomically; a study whose source
// geometry cannot carry a segmentation gets a `dicom-out-skipped` warning and no object at all.
#pragma once
#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "cspine/predict.h"
#include "output/writers.h"

namespace cspine {

// Decision threshold of "predicted fractured" in the SR and on the key image (p >= threshold), as in
// `cspine evaluate`'s default.
inline constexpr double kFractureThreshold = 0.5;

struct DicomModels {
  std::string seg_fingerprint, cls_fingerprint;  // FNV-1a of the model files (the report's fnv1a64)
};

// Why the study's results cannot be written as DICOM (empty: they can). Checks the result against itself: a source
// instance for every slice, no tilt-corrected (resampled) grid, a usable grid; the source files are checked when read.
std::string dicom_output_problem(const StudyResult& r);

// The SOP Instance UIDs and paths written for one study.
struct DicomObjects {
  std::string dir;
  std::string seg_path, sr_path, key_path;
  std::string seg_uid, sr_uid, key_uid;
  int segments = 0, seg_frames = 0;
};

// Writes the study's objects into dir/<StudyInstanceUID>/ (each atomically). Throws DicomSkipped with the reason
// when the study's source cannot carry them (nothing is written then), OutputError when a file cannot be written.
DicomObjects write_dicom_results(const StudyResult& r, const DicomModels& models, const std::string& dir);

struct DicomSkipped : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The key image's pixels (RGB, rows top to bottom), also used for docs/images/.
struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
};
RgbImage render_key_image(const StudyResult& r, const Volume& ct, const std::vector<uint8_t>& labels);

class DicomResultsWriter : public Writer {
public:
  DicomResultsWriter(std::string dir, DicomModels models) : dir_(std::move(dir)), models_(std::move(models)) {}
  void study(const StudyResult& r) override;
  Warnings take_warnings() override;

private:
  std::string dir_;
  DicomModels models_;
  Warnings warnings_;
};

}  // namespace cspine
