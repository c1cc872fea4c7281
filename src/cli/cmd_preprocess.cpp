// `cspine preprocess`: the exact tensors cspine feeds a model for one study, as .npy files. It is how the
// train/serve parity test compares the C++ preprocessing with the Python one, and a way for users to train
// on precisely what inference will see.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "util/text.h"
#include "cli/commands.h"
#include "cspine/contract.h"
#include "cspine/dicom.h"
#include "cspine/error.h"
#include "cspine/preprocess.h"
#include "cspine/runtime.h"
#include "cspine/volume.h"
#include "util/atomic_file.h"
#include "util/npy.h"
#include "pipeline/crop_sampler.h"
#include "pipeline/segmenter.h"
#include "pipeline/slice_input.h"

namespace fs = std::filesystem;

namespace cspine::cli {

namespace {

std::vector<int> parse_slices(const std::string& spec, int slices) {
  std::vector<int> out;
  if (spec.empty() || spec == "all") {
    for (int k = 0; k < slices; ++k) out.push_back(k);
    return out;
  }
  std::size_t pos = 0;
  while (pos <= spec.size()) {
    const std::size_t comma = spec.find(',', pos);
    const std::string item = spec.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    try {
      std::size_t used = 0;
      const int k = std::stoi(item, &used);
      if (used != item.size()) throw std::invalid_argument(item);
      if (k < 0 || k >= slices)
        throw UsageError("--slices: " + item + " is outside the study's slices 0.." + std::to_string(slices - 1));
      out.push_back(k);
    } catch (const std::logic_error&) {
      throw UsageError("--slices: '" + item + "' is not a slice index");
    }
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

}  // namespace

void add_preprocess(CLI::App& app, Runner& run) {
  struct Options {
    std::string path, model, labels, out, study, slices;
    int threads = 0;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "preprocess",
      "Write the model inputs cspine builds for one study as .npy files (for parity checks and training)");
  cmd->add_option("path", opt->path, "A study folder (or a folder holding exactly one study)")->required();
  cmd->add_option("-m,--model", opt->model, "TorchScript model (or a cspine.json contract) whose input to build")
      ->required();
  cmd->add_option("-o,--out", opt->out, "Output folder (created): seg_input.npy or cls_input.npy, preprocess.json")
      ->required();
  cmd->add_option("--labels", opt->labels,
                  "Vertebra label map (NIfTI, labels 1-7 = C1-C7, any orientation); required for a classifier");
  cmd->add_option("--slices", opt->slices, "Segmentation: comma-separated slice indices, or 'all' (default)");
  cmd->add_option("--study", opt->study, "StudyInstanceUID when PATH holds several studies");
  cmd->add_option("--threads", opt->threads, "Threads for decoding (0: all cores)")->check(CLI::NonNegativeNumber);
  cmd->callback([opt, &run] {
    run = [opt] {
      const ModelContract c = read_model_contract(opt->model);
      if (c.kind == ModelKind::classifier && opt->labels.empty())
        throw UsageError("a classifier's input needs --labels (the vertebra label map of the study)");
      if (c.kind == ModelKind::classifier && c.crop != CropRule::square)
        throw UsageError("'" + opt->model + "' crops a study box (contract input.crop \"study_box\"), which needs the "
                         "segmentation's own output; use `cspine predict --dump-stages DIR` to see its input");
      std::error_code ec;
      fs::create_directories(opt->out, ec);
      if (ec) throw OutputError("cannot create '" + opt->out + "': " + ec.message());
      const StudyIndex index = scan_studies(opt->path, ScanOptions{opt->threads});
      LoadOptions lo;
      lo.threads = opt->threads;
      lo.stored_values = c.intensity == IntensityRule::slice_minmax;
      const LoadedSeries loaded = load_study(index, opt->study, lo, "");
      const Volume& v = loaded.volume;
      nlohmann::json report = {{"model", opt->model},
                               {"kind", c.kind == ModelKind::segmentation ? "segmentation" : "classifier"},
                               {"volume", {{"columns", v.size[0]}, {"rows", v.size[1]}, {"slices", v.size[2]}}}};
      // The tensors come from the same stage code that `cspine predict` runs (host path).
      if (c.kind == ModelKind::segmentation) {
        const std::vector<int> ks = parse_slices(opt->slices, v.size[2]);
        const std::vector<float> x =
            Segmenter::batch_input(Segmenter::host_input(v, c, opt->threads,
                                                         model_slice_order(loaded.slice_numbers, c.slice_order)),
                                   v.size[2], c, ks);
        write_npy_f32((fs::path(opt->out) / "seg_input.npy").string(), x,
                      {ks.size(), static_cast<std::size_t>(c.channels()), static_cast<std::size_t>(c.height),
                       static_cast<std::size_t>(c.width)});
        report["slices"] = ks;
      } else {
        const std::vector<uint8_t> labels = read_labels_on_grid(opt->labels, v);
        // Every labelled vertebra is cropped, however thin (predict gives one on fewer than min_slices slices the
        // prior instead; training data, like scripts/cspine_models/preprocess.py, keeps it).
        const auto plan = plan_vertebrae(vertebra_extents(labels, v.size), c, /*thin_fallback=*/false);
        const std::vector<float> x = host_crops(v, plan, c, opt->threads);
        nlohmann::json vertebrae = nlohmann::json::array();
        for (const VertebraResult& vr : plan) {
          const auto& e = vr.extent;
          if (!e) {
            vertebrae.push_back(nullptr);
            continue;
          }
          const CropBox b = vr.crop;
          const std::vector<int>& picked = vr.picked;
          vertebrae.push_back({{"label", e->label},
                               {"z", {e->z0, e->z1}},
                               {"y", {e->y0, e->y1}},
                               {"x", {e->x0, e->x1}},
                               {"slices", e->slices},
                               {"voxels", e->voxels},
                               {"crop", {b.x, b.y, b.side}},
                               {"picked", picked}});
        }
        write_npy_f32((fs::path(opt->out) / "cls_input.npy").string(), x,
                      {7, static_cast<std::size_t>(c.slices_per_vertebra), static_cast<std::size_t>(c.channels()),
                       static_cast<std::size_t>(c.height), static_cast<std::size_t>(c.width)});
        report["vertebrae"] = vertebrae;
      }
      write_text_atomically((fs::path(opt->out) / "preprocess.json").string(), dump_json(report, 1) + "\n");
      log_info("wrote " + opt->out);
      return 0;
    };
  });
}

}  // namespace cspine::cli
