// The floor of `cspine predict`: the two models' forward passes alone, on tensors already in memory, with the
// same backend, batching, device and threads as predict. bench/pipeline.sh compares the end-to-end time with it.
//   cspine_model_floor SEG.pt CLS.pt SLICES[,SLICES...] [--batch-size 32] [--threads N] [--device auto]
//                      [--fp16] [--repeat 1]
// Prints one JSON object: seconds per study (each slice count), their mean, and the device.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cspine/backend.h"
#include "cspine/contract.h"
#include "cspine/error.h"
#include "util/parallel.h"

using namespace cspine;

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s SEG.pt CLS.pt SLICES[,SLICES...] [--batch-size N] [--threads N] [--device D] [--fp16] [--repeat N]\n", argv[0]);
    return 2;
  }
  std::vector<int> studies;
  for (std::string s = argv[3]; !s.empty();) {
    const auto c = s.find(',');
    studies.push_back(std::stoi(s.substr(0, c)));
    s = c == std::string::npos ? "" : s.substr(c + 1);
  }
  int batch = 32, threads = 0, repeat = 1;
  std::string device = "auto";
  bool fp16 = false;
  for (int i = 4; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--batch-size" && i + 1 < argc) batch = std::atoi(argv[++i]);
    else if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--device" && i + 1 < argc) device = argv[++i];
    else if (a == "--repeat" && i + 1 < argc) repeat = std::atoi(argv[++i]);
    else if (a == "--fp16") fp16 = true;
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  try {
    const ModelContract sc = read_model_contract(argv[1]), cc = read_model_contract(argv[2]);
    set_backend_threads(resolve_threads(threads));
    const TorchModel seg(argv[1], device, fp16), cls(argv[2], device, fp16);
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    std::vector<float> xs(static_cast<std::size_t>(batch) * sc.channels() * sc.height * sc.width);
    for (auto& v : xs) v = u(rng);
    std::vector<float> xc(7u * cc.slices_per_vertebra * cc.channels() * cc.height * cc.width);
    for (auto& v : xc) v = u(rng);
    seg.forward(xs.data(), {batch, sc.channels(), sc.height, sc.width}, true);  // warm-up, as predict's first study
    cls.forward(xc.data(), {7, cc.slices_per_vertebra, cc.channels(), cc.height, cc.width});
    using Clock = std::chrono::steady_clock;
    std::vector<double> per_study;
    double sum = 0;
    for (int rep = 0; rep < repeat; ++rep)
      for (int slices : studies) {
        const auto t0 = Clock::now();
        for (int s0 = 0; s0 < slices; s0 += batch) {
          const int n = std::min(batch, slices - s0);
          seg.forward(xs.data(), {n, sc.channels(), sc.height, sc.width}, true);
        }
        cls.forward(xc.data(), {7, cc.slices_per_vertebra, cc.channels(), cc.height, cc.width});
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        per_study.push_back(s);
        sum += s;
      }
    const nlohmann::json out = {{"device", seg.device()},
                                {"fp16", fp16},
                                {"slices", studies},
                                {"seconds_per_study", per_study},
                                {"mean_seconds_per_study", sum / static_cast<double>(per_study.size())}};
    std::printf("%s\n", out.dump().c_str());
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "cspine_model_floor: %s\n", e.what());
    return to_int(e.code());
  }
}
