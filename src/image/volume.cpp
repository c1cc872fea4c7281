#include "cspine/volume.h"

#include <cmath>

namespace cspine {

std::array<double, 3> Volume::voxel_to_lps(double i, double j, double k) const {
  double z = k * spacing[2];
  const auto kk = static_cast<std::size_t>(k);
  if (!slice_positions.empty() && k == std::floor(k) && kk < slice_positions.size()) z = slice_positions[kk];
  std::array<double, 3> p{};
  for (int r = 0; r < 3; ++r)
    p[r] = origin[r] + direction[r * 3 + 0] * i * spacing[0] + direction[r * 3 + 1] * j * spacing[1] +
           direction[r * 3 + 2] * z;
  return p;
}

}  // namespace cspine
