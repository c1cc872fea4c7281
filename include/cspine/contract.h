// The model contract: the JSON embedded as `cspine.json` in every exported TorchScript file. It says how to
// feed the model (slice offsets, size, HU window, crops) and how to read its outputs. The Python side
// (scripts/cspine_models/contract.py) writes it and applies the same validation; docs/model-contract.md is
// the reference.
#pragma once
#include <array>
#include <string>
#include <vector>

#include "cspine/backend_abi.h"

namespace cspine {

inline constexpr int kContractVersion = 2;

enum class ModelKind { segmentation, classifier };

// Version 2's vocabulary of preprocessing and decoding steps (docs/model-contract.md). The first value of each is
// version 1's behaviour, which is also the default when a field is absent.
enum class SliceOrderRule { position, instance_number };        // input.slice_order
enum class EdgeRule { clamp, zeros };                           // input.edge: a neighbour past either end
enum class IntensityRule { hu_window, slice_minmax };           // input.intensity
enum class ResizeRule { bilinear, opencv_nearest, opencv_linear };  // input.resize (bilinear: PyTorch's)
enum class ActivationRule { softmax, sigmoid };                 // segmentation output.activation
enum class CleanupRule { largest_component, none };             // segmentation output.cleanup
enum class LocateRule { extents, study_box };                   // classifier input.locate
enum class CropRule { square, study_box };                      // classifier input.crop
enum class SelectRule { spread, linspace_floor };               // classifier input.select
enum class EnsembleRule { single, mean_sigmoid };               // classifier output.ensemble

struct ModelContract {
  ModelKind kind = ModelKind::segmentation;
  int version = kContractVersion;
  std::vector<int> slice_offsets{-1, 0, 1};  // channel c = slice k + slice_offsets[c] (edge rule past the ends)
  int height = 128, width = 128;             // model input size (rows, columns)
  double hu_low = -500, hu_high = 1300;      // window: x = clamp((hu - low) / (high - low), 0, 1)
  SliceOrderRule slice_order = SliceOrderRule::position;
  EdgeRule edge = EdgeRule::clamp;
  IntensityRule intensity = IntensityRule::hu_window;
  ResizeRule resize = ResizeRule::bilinear;
  // segmentation
  std::vector<std::string> classes;  // the label vocabulary: background, C1..C7[, extra classes]
  ActivationRule activation = ActivationRule::softmax;
  double threshold = 0.5;            // sigmoid: a pixel is labelled when its largest sigmoid exceeds this
  std::vector<int> channel_labels;   // label of each output channel (the model's channel count)
  CleanupRule cleanup = CleanupRule::largest_component;
  // classifier
  int slices_per_vertebra = 24;
  double crop_margin = 0.15;
  int min_slices = 5;             // a vertebra found on fewer slices gets the prior
  LocateRule locate = LocateRule::extents;
  int box_min_voxels = 10;        // study_box: a plane with at least this many labelled voxels is inside the box
  CropRule crop = CropRule::square;
  SelectRule select = SelectRule::spread;
  EnsembleRule ensemble = EnsembleRule::single;
  int members = 1;                // ensemble members (logits [V, members])
  std::array<double, 7> prior{};  // probability for a vertebra that cannot be found
  bool exact_numerics = false;    // runtime.numerics "exact": no result-changing optimisation of the model
  std::string json;               // the document as read

  int channels() const { return static_cast<int>(slice_offsets.size()); }
  // True when the input rules are version 1's (HU window, PyTorch bilinear, position order, clamped edges,
  // square crops): the ones the plugin can also apply on the models' device. Other rules are applied on the host
  // with OpenCV's own arithmetic, whatever the device.
  bool device_preprocessable() const {
    return slice_order == SliceOrderRule::position && edge == EdgeRule::clamp &&
           intensity == IntensityRule::hu_window && resize == ResizeRule::bilinear &&
           locate == LocateRule::extents && crop == CropRule::square && select == SelectRule::spread &&
           activation == ActivationRule::softmax;
  }
};

// Parses and validates a contract document; `source` names the file in messages. Throws ModelError
// saying exactly which field is wrong.
ModelContract parse_contract(const std::string& json_text, const std::string& source);

// The contract's input rules as they cross to the model plugin (include/cspine/backend_abi.h): one struct, so
// a new rule is a field there and here, not a new parameter on every entry point.
cspine_input_rules input_rules(const ModelContract& c);

// Reads the contract embedded in a TorchScript file (through the model backend), or a plain .json contract.
// Throws ModelError when the file is missing, not a TorchScript archive, has no contract or a bad one.
ModelContract read_model_contract(const std::string& path);

}  // namespace cspine
