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
#include "cspine/preprocess.h"
#include "cspine/warning.h"

namespace cspine {

// Keeps only the largest 3-D connected component (6-connectivity: faces) of each label in [first, last];
// the other voxels of those labels become 0 (background). Labels outside the range are untouched. Ties go to
// the component met first in raster order (i fastest, then j, then k). `size` = {columns, rows, slices}.
// Returns the number of voxels removed. Uses ITK's ScalarConnectedComponentImageFilter.
std::size_t keep_largest_components(std::vector<uint8_t>& labels, const std::array<int, 3>& size, int first = 1,
                                    int last = 7);

// In-plane nearest-neighbour resize of a label map (slices of rows x cols, cols fastest) with PyTorch's
// 'nearest' rule: source index = min(floor(dst * (float(in) / out)), in - 1) in float arithmetic.
std::vector<uint8_t> resize_labels_nearest(const std::vector<uint8_t>& labels, int cols, int rows, int slices,
                                           int out_cols, int out_rows);

// vertebra_extents of resize_labels_nearest(labels, ...) without building the resized map: each small voxel
// stands for the block of output pixels the nearest rule maps onto it. Exactly equal (tested), far cheaper.
std::array<std::optional<VertebraExtent>, 7> vertebra_extents_resized(const std::vector<uint8_t>& labels, int cols,
                                                                      int rows, int slices, int out_cols, int out_rows);

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
};

class TorchModel;

// A study loaded and turned into the segmentation's input, ready for the models: what the prefetch thread
// hands over. A failure while loading is kept (error) and rethrown by Predictor::run, so it is reported as
// that study's failure.
struct PreparedStudy {
  std::string study_uid, series_uid;
  LoadedSeries loaded;
  std::vector<float> seg_input;  // window_resize_volume of the volume
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

  // Scores one study of `index` and, when `mask_path` is not empty, writes its vertebra label map there
  // (NIfTI on the CT grid). Errors of the study (loading, a model failing on it) propagate as cspine::Error;
  // an interrupt between batches throws InterruptedError.
  StudyResult predict(const StudyIndex& index, const std::string& study_uid, const std::string& mask_path = "") const;

  // predict() in two halves, so that loading the next study can overlap the models on this one: prepare()
  // never throws (the error travels in the result); run() does the rest and throws what prepare() caught.
  PreparedStudy prepare(const StudyIndex& index, const std::string& study_uid, int threads) const;
  StudyResult run(PreparedStudy prepared, const std::string& mask_path = "") const;

private:
  PredictOptions options_;
  bool device_preprocess_ = false;
  ModelContract seg_contract_, cls_contract_;
  std::unique_ptr<TorchModel> seg_, cls_;
};

}  // namespace cspine
