// Stage 1, the segmenter: a study's volume -> vertebra labels at the model's input size. The host/device choice
// is made once (a DeviceVolume or none): on the host the input is every slice windowed and resized once
// (host_input, which the loading thread prepares) and stacked into 2.5D triplets per batch; on the device the
// plugin builds it where the volume is. Either way only labels (the argmax) come back.
#pragma once
#include <vector>

#include "cspine/volume.h"

#include "cspine/backend.h"
#include "cspine/contract.h"
#include "cspine/predict.h"

namespace cspine {

class Segmenter {
public:
  Segmenter(const TorchModel& model, const ModelContract& contract, int batch_size, int threads)
      : model_(model), contract_(contract), batch_size_(batch_size), threads_(threads) {}

  // The host path's input: every slice, in the contract's slice order (`order`, model_slice_order), turned into
  // intensities and resized to the model's size once (slices x height x width). Static, like batch_input, so that
  // `cspine preprocess` builds its tensors with exactly this code.
  static std::vector<float> host_input(const Volume& volume, const ModelContract& contract, int threads,
                                       const std::vector<int>& order);
  // The model's input for model slices `ks`, from host_input's result: ks.size() x channels x height x width
  // (neighbours past either end by the contract's edge rule).
  static std::vector<float> batch_input(const std::vector<float>& host_input, int slices, const ModelContract& contract,
                                        const std::vector<int>& ks);

  // Labels of every slice at the model's size. `on_device`: the volume already on the model's device (the
  // input is built there; `host_input` is unused), or null for the host path. Adds the time spent in forward
  // passes to seconds.segment_model. Throws ModelError when the model's output breaks its contract.
  // Labels are decoded by the contract (argmax, or sigmoid with a threshold, then channel_labels) and returned
  // in volume order whatever the model's slice order.
  LabelGrid segment(const Volume& volume, const std::vector<float>& host_input, const std::vector<int>& order,
                    const DeviceVolume* on_device, StageSeconds& seconds) const;

private:
  const TorchModel& model_;
  const ModelContract& contract_;
  int batch_size_, threads_;
};

}  // namespace cspine
