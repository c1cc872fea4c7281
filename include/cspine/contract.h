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

inline constexpr int kContractVersion = 1;

enum class ModelKind { segmentation, classifier };

struct ModelContract {
  ModelKind kind = ModelKind::segmentation;
  int version = kContractVersion;
  std::vector<int> slice_offsets{-1, 0, 1};  // channel c = slice k + slice_offsets[c], clamped to the volume
  int height = 128, width = 128;             // model input size (rows, columns)
  double hu_low = -500, hu_high = 1300;      // window: x = clamp((hu - low) / (high - low), 0, 1)
  // segmentation
  std::vector<std::string> classes;  // background, C1..C7[, extra classes]
  // classifier
  int slices_per_vertebra = 24;
  double crop_margin = 0.15;
  int min_slices = 5;             // a vertebra found on fewer slices gets the prior
  std::array<double, 7> prior{};  // probability for a vertebra that cannot be found
  std::string json;               // the document as read

  int channels() const { return static_cast<int>(slice_offsets.size()); }
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
