// The floor of `cspine predict`: the two models' forward passes alone, on tensors already in memory, with the
// same backend, batching, device and threads as predict. bench/pipeline.sh compares the end-to-end time with it.
//   cspine_model_floor SEG.pt CLS.pt INPUT_DIR [--batch-size 32] [--threads N] [--device auto] [--fp16]
//   cspine_model_floor SEG.pt CLS.pt SLICES[,SLICES...] [same options]
// With a folder of studies, each study is loaded and its segmentation input and seven classifier crops (one box
// per vertebra spread over the volume's middle) are built first, untimed; then only the forward passes are
// timed, on those real inputs. With slice counts, random inputs of those sizes. Prints one JSON object: seconds
// per study, their mean, and the device.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cspine/backend.h"
#include "cspine/contract.h"
#include "cspine/dicom.h"
#include "cspine/error.h"
#include "cspine/preprocess.h"
#include "cspine/runtime.h"
#include "util/parallel.h"

using namespace cspine;

namespace {

struct StudyInputs {
  int slices = 0;
  std::vector<float> seg;  // slices x channels x height x width, in slice order
  std::vector<float> cls;  // 7 x slices_per_vertebra x channels x height x width
};

StudyInputs random_inputs(int slices, const ModelContract& sc, const ModelContract& cc, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  StudyInputs s;
  s.slices = slices;
  s.seg.resize(static_cast<std::size_t>(slices) * sc.channels() * sc.height * sc.width);
  for (auto& v : s.seg) v = u(rng);
  s.cls.resize(7u * cc.slices_per_vertebra * cc.channels() * cc.height * cc.width);
  for (auto& v : s.cls) v = u(rng);
  return s;
}

StudyInputs real_inputs(const Volume& v, const ModelContract& sc, const ModelContract& cc, int threads) {
  StudyInputs s;
  s.slices = v.size[2];
  const std::vector<float> resized = window_resize_volume(v, sc, threads);
  std::vector<int> ks(static_cast<std::size_t>(s.slices));
  for (int k = 0; k < s.slices; ++k) ks[static_cast<std::size_t>(k)] = k;
  s.seg.resize(static_cast<std::size_t>(s.slices) * sc.channels() * sc.height * sc.width);
  stack_triplets(resized, s.slices, sc, ks, s.seg.data());
  const std::size_t per = static_cast<std::size_t>(cc.slices_per_vertebra) * cc.channels() * cc.height * cc.width;
  s.cls.resize(7 * per);
  for (int k = 0; k < 7; ++k) {  // vertebra-sized boxes (a quarter of the width) stacked along the middle third
    VertebraExtent e;
    e.x0 = v.size[0] * 3 / 8, e.x1 = v.size[0] * 5 / 8;
    e.y0 = v.size[1] * 3 / 8, e.y1 = v.size[1] * 5 / 8;
    e.z0 = s.slices / 3 + k * s.slices / 21, e.z1 = e.z0 + s.slices / 21;
    e.slices = e.z1 - e.z0 + 1;
    vertebra_input(v, e, cc, s.cls.data() + static_cast<std::size_t>(k) * per);
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s SEG.pt CLS.pt INPUT_DIR|SLICES[,SLICES...] [--batch-size N] [--threads N] [--device D] [--fp16]\n", argv[0]);
    return 2;
  }
  const std::string what = argv[3];
  int batch = 0, threads = 0;  // batch 0: auto, as predict
  std::string device = "auto";
  bool fp16 = false;
  for (int i = 4; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--batch-size" && i + 1 < argc) batch = std::atoi(argv[++i]);
    else if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--device" && i + 1 < argc) device = argv[++i];
    else if (a == "--fp16") fp16 = true;
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  set_log_level(LogLevel::warn);
  try {
    const ModelContract sc = read_model_contract(argv[1]), cc = read_model_contract(argv[2]);
    set_backend_threads(resolve_threads(threads));
    const TorchModel seg(argv[1], device, fp16), cls(argv[2], device, fp16);
    if (batch <= 0) batch = seg.device().rfind("cuda", 0) == 0 ? 128 : 32;  // predict's --batch-size auto

    std::vector<StudyInputs> studies;
    std::mt19937 rng(1);
    if (std::filesystem::is_directory(what)) {
      const StudyIndex index = scan_studies(what);
      for (const auto& st : index.studies) {
        LoadOptions lo;
        lo.threads = threads;
        studies.push_back(real_inputs(load_study(index, st.study_uid, lo).volume, sc, cc, threads));
      }
    } else {
      for (std::string s = what; !s.empty();) {
        const auto c = s.find(',');
        studies.push_back(random_inputs(std::stoi(s.substr(0, c)), sc, cc, rng));
        s = c == std::string::npos ? "" : s.substr(c + 1);
      }
    }
    if (studies.empty()) throw Error(ExitCode::no_dicom, "no studies in " + what);

    const std::size_t seg_per = static_cast<std::size_t>(sc.channels()) * sc.height * sc.width;
    // Warm-up, as predict's first study.
    seg.forward(studies[0].seg.data(), {std::min(batch, studies[0].slices), sc.channels(), sc.height, sc.width}, &kDecodeArgmax);
    cls.forward(studies[0].cls.data(), {7, cc.slices_per_vertebra, cc.channels(), cc.height, cc.width});
    using Clock = std::chrono::steady_clock;
    std::vector<double> per_study;
    std::vector<int> slices;
    double sum = 0;
    for (const auto& st : studies) {
      const auto t0 = Clock::now();
      for (int s0 = 0; s0 < st.slices; s0 += batch) {
        const int n = std::min(batch, st.slices - s0);
        seg.forward(st.seg.data() + static_cast<std::size_t>(s0) * seg_per, {n, sc.channels(), sc.height, sc.width}, &kDecodeArgmax);
      }
      cls.forward(st.cls.data(), {7, cc.slices_per_vertebra, cc.channels(), cc.height, cc.width});
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      per_study.push_back(s);
      slices.push_back(st.slices);
      sum += s;
    }
    const nlohmann::json out = {{"device", seg.device()},
                                {"fp16", fp16},
                                {"inputs", std::filesystem::is_directory(what) ? "studies" : "random"},
                                {"slices", slices},
                                {"seconds_per_study", per_study},
                                {"mean_seconds_per_study", sum / static_cast<double>(per_study.size())}};
    std::printf("%s\n", out.dump().c_str());
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "cspine_model_floor: %s\n", e.what());
    return to_int(e.code());
  }
}
