#include "pipeline/aggregator.h"

#include <algorithm>
#include <cmath>

namespace cspine {

double noisy_or(const std::array<double, 7>& p) {
  double keep = 1.0;
  for (double x : p) keep *= 1.0 - x;
  return 1.0 - keep;
}

double aggregate(const ClassifierOutput& out, const ModelContract& cc, std::array<VertebraResult, 7>& vertebrae) {
  const auto nsl = static_cast<std::size_t>(cc.slices_per_vertebra);
  std::array<double, 7> p{};
  for (std::size_t k = 0; k < vertebrae.size(); ++k) {
    VertebraResult& vr = vertebrae[k];
    if (vr.fallback != Fallback::none) {
      vr.probability = cc.prior[k];
    } else {
      vr.probability = out.probability[k];
      if (!out.attention.empty()) {
        // One weight per picked slice: a study-box vertebra's zero-padding slices are never its key slice.
        const float* a = out.attention.data() + k * nsl;
        vr.attention.assign(a, a + std::min(nsl, vr.picked.size()));
        vr.key = static_cast<int>(std::max_element(vr.attention.begin(), vr.attention.end()) - vr.attention.begin());
      }
    }
    p[k] = vr.probability;
  }
  return noisy_or(p);
}

}  // namespace cspine
