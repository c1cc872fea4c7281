// The prediction pipeline for one study: load -> segmentation over 2.5D triplets -> largest connected
// component per vertebra -> label map on the CT grid -> extents, crops, slice selection -> classifier on the
// seven vertebrae in one batch -> probabilities, attention, patient_overall. Models are loaded once (Predictor)
// and run through the LibTorch backend plugin. scripts/reference_predict.py is the same pipeline in Python;
// docs/model-contract.md states the rules both follow.
#pragma once
#include <array>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cspine/backend.h"
#include "cspine/contract.h"
#include "cspine/dicom.h"
#include "cspine/labels.h"
#include "cspine/preprocess.h"
#include "cspine/warning.h"

namespace cspine {

// What vertebra_input computes on the host, as a request for the model's device (TorchModel::classify_crops):
// each item's crop box, picked slices and their channel slices (clamped to [0, slices - 1]); a null item is
// all zeros.
CropRequest crop_request(const ModelContract& c, const std::vector<const VertebraExtent*>& items, int slices);

// 1 - prod(1 - p): the patient-level probability (contract: output.patient_overall = "noisy_or").
double noisy_or(const std::array<double, 7>& p);

struct PredictOptions {
  std::string seg_model, cls_model;
  std::string device = "auto";  // auto, cpu, cuda, cuda:N
  bool fp16 = false;            // CUDA only
  int batch_size = 0;           // slices per segmentation batch; 0: auto (32 on the CPU, 128 on CUDA)
  int threads = 0;              // decoding, preprocessing and LibTorch threads (0: all cores)
  // Where the models' inputs are built: "host" (src/pipeline/preprocess.cpp), "device" (LibTorch ops on the
  // models' device: the volume sent over once as int16, the segmentation input and the classifier crops made
  // there, only labels and outputs back), or "auto": device on CUDA, host on the CPU (faster there, measured).
  std::string preprocess = "auto";
  bool keep_intermediates = false;  // fill StudyResult::intermediates (large: the classifier's whole input)
};

// Why a vertebra got the contract's prior instead of a prediction.
enum class Fallback { none, not_found, too_few_slices };
const char* fallback_name(Fallback f);  // "", "not-found", "too-few-slices"

struct VertebraResult {
  double probability = 0.0;
  Fallback fallback = Fallback::none;
  std::optional<VertebraExtent> extent;  // as segmented (also when too thin to classify)
  CropBox crop;                          // when classified
  std::vector<int> picked;               // slice indices fed to the classifier
  std::vector<float> attention;          // one weight per picked slice (when the model returns attention)
  int key = -1;                          // position in `picked` of the highest attention, -1 when none
};

struct StageSeconds {
  double load = 0, segment = 0, cleanup = 0, classify = 0, masks = 0;
  // How long the models waited for this study to be loaded: `load` when loaded in turn, less when a loading
  // thread prepared it while the models ran on the previous study (predict --prefetch). The critical path.
  double wait = 0;
  // Parts of `segment` and `classify` spent inside the models' forward passes (inputs already built): the
  // floor no pipeline can go below.
  double segment_model = 0, classify_model = 0;
  double total() const { return wait + segment + cleanup + classify + masks; }
};

// The segmentation's labels at the model's input size (slices x rows x cols, cols fastest, slices in volume
// order), after cleanup.
struct LabelGrid {
  std::vector<uint8_t> labels;
  int cols = 0, rows = 0, slices = 0;
};

// The contract's "study_box" location (docs/model-contract.md): one box on the segmentation grid, in model slice
// order (slices [slice0, slice1)), with each of those slices' class (0: none, 1..7: C1..C7).
struct StudyBox {
  int slice0 = 0, slice1 = 0, row0 = 0, row1 = 0, col0 = 0, col1 = 0;  // ends exclusive
  int grid_rows = 0, grid_cols = 0;
  std::vector<int> slice_class;
};

// What the models were given, kept when PredictOptions::keep_intermediates is set (predict --dump-stages), so that
// a port can be compared stage by stage with the code it came from.
struct StageIntermediates {
  std::vector<int> order;                 // model slice order: volume slice index of each model slice
  std::vector<uint8_t> labels;            // decoded labels before cleanup, model order, slices x rows x cols
  std::vector<float> cls_input;           // the classifier's input, classified vertebrae only, C order
  std::vector<int64_t> cls_shape;         // its shape
  std::vector<int> classified;            // vertebra index (0..6) of each classifier item
  std::vector<float> member_logits;       // items x members
  int members = 1;
};

// What one scored study gives the writers (src/output/writers.h): probabilities, extents and key slices, the
// label map, and the source series' images and geometry.
struct StudyResult {
  std::string study_uid, series_uid;
  std::array<int, 3> size{0, 0, 0};          // columns, rows, slices
  std::array<double, 3> spacing{0, 0, 0};
  std::vector<int> slice_numbers;            // InstanceNumber per slice (index + 1 when absent)
  std::vector<double> slice_z;               // LPS z (mm) of each slice's first voxel
  Warnings warnings;                         // from the loader
  std::size_t cleanup_voxels = 0;            // segmentation voxels removed as small components (model grid)
  std::array<VertebraResult, 7> vertebrae;   // C1..C7
  double patient_overall = 0.0;
  StageSeconds seconds;
  Volume geometry;                           // the CT grid: size, spacing, origin, direction (no voxel values)
  std::vector<SourceInstance> sources;       // the source image of each slice, in volume order
  std::vector<std::string> source_files;     // the file of each slice, in volume order (DICOM writers read one)
  std::shared_ptr<const Volume> ct;          // the CT itself (HU), for writers that draw it (the DICOM key image)
  LabelGrid labels;                          // the cleaned segmentation, model grid
  std::optional<StudyBox> study_box;         // contract locate "study_box"
  std::shared_ptr<const StageIntermediates> intermediates;  // PredictOptions::keep_intermediates

  // The vertebra label map on the CT grid (1..7 = C1..C7; PyTorch's nearest rule from `labels`).
  std::vector<uint8_t> label_map() const;
};

class TorchModel;

// A study loaded and turned into the segmentation's input, ready for the models: what the prefetch thread
// hands over. A failure while loading is kept (error) and rethrown by Predictor::run, so it is reported as
// that study's failure.
struct PreparedStudy {
  std::string study_uid, series_uid;
  LoadedSeries loaded;
  std::vector<int> order;        // the segmentation contract's slice order (model_slice_order)
  std::vector<float> seg_input;  // model_planes of the volume in that order
  double load_seconds = 0, resize_seconds = 0;
  std::exception_ptr error;
};

class Predictor {
public:
  // Reads both contracts (ModelError when missing or invalid, or when the kinds are swapped) and loads both
  // models on the device (UsageError when the device cannot be used).
  explicit Predictor(const PredictOptions& options);
  ~Predictor();
  Predictor(const Predictor&) = delete;
  Predictor& operator=(const Predictor&) = delete;

  const ModelContract& seg_contract() const { return seg_contract_; }
  const ModelContract& cls_contract() const { return cls_contract_; }
  std::string device() const;
  bool preprocesses_on_device() const { return device_preprocess_; }
  int batch_size() const { return options_.batch_size; }  // resolved

  // A study in two halves, so that loading the next study can overlap the models on this one: prepare() loads
  // it and builds the segmentation's host input, and never throws (the error travels in the result); run()
  // composes the stages (src/pipeline: segmenter, vertebra locator, crop sampler, classifier, aggregator) and
  // throws what prepare() caught, cspine::Error for a model failing on the study, or InterruptedError between
  // batches. Nothing is written: the writers (src/output/writers.h) take the result.
  PreparedStudy prepare(const StudyIndex& index, const std::string& study_uid, int threads) const;
  StudyResult run(PreparedStudy prepared) const;

private:
  PredictOptions options_;
  bool device_preprocess_ = false;
  ModelContract seg_contract_, cls_contract_;
  std::unique_ptr<TorchModel> seg_, cls_;
  std::unique_ptr<class Segmenter> segmenter_;
};

}  // namespace cspine
