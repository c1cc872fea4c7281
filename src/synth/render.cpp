#include "synth/render.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <mutex>

#include "util/interrupt.h"
#include "util/parallel.h"

namespace cspine::synth {

namespace {
constexpr double kFar = 8.0;  // must match anatomy.cpp

struct WorldBox {
  V3 lo, hi;
};

WorldBox world_box(const Bone& b) {
  WorldBox w{{1e9, 1e9, 1e9}, {-1e9, -1e9, -1e9}};
  for (int c = 0; c < 8; ++c) {
    const V3 l{(c & 1) ? b.local_hi.x : b.local_lo.x, (c & 2) ? b.local_hi.y : b.local_lo.y,
               (c & 4) ? b.local_hi.z : b.local_lo.z};
    const V3 p = b.to_world(l);
    w.lo = {std::min(w.lo.x, p.x), std::min(w.lo.y, p.y), std::min(w.lo.z, p.z)};
    w.hi = {std::max(w.hi.x, p.x), std::max(w.hi.y, p.y), std::max(w.hi.z, p.z)};
  }
  return w;
}

// Gaussian noise from a table indexed by a hash of the voxel index: cheap, and independent of threads.
struct NoiseTable {
  std::vector<float> values;
  uint64_t seed;
  explicit NoiseTable(uint64_t s) : values(1u << 16), seed(s) {
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(normal_at(hash2(s, i)));
  }
  float at(uint64_t index) const {
    const uint64_t h = mix64(seed ^ (index * 0x9e3779b97f4a7c15ULL));
    return (values[h & 0xffff] + values[(h >> 16) & 0xffff]) * 0.70710678f;
  }
};
}  // namespace

Rendered render(const Phantom& ph, const Grid& g, uint64_t noise_seed, int threads) {
  Rendered out;
  Volume& v = out.volume;
  v.size = {g.columns, g.rows, g.slices};
  v.spacing = {g.pixel_mm, g.pixel_mm, g.slice_mm};
  v.origin = {g.origin.x, g.origin.y, g.origin.z};
  v.direction = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  v.hu.resize(v.voxel_count());
  v.slice_positions.resize(static_cast<std::size_t>(g.slices));
  for (int k = 0; k < g.slices; ++k) v.slice_positions[static_cast<std::size_t>(k)] = k * g.slice_mm;
  out.labels.assign(v.voxel_count(), 0);
  out.changed_voxels.assign(16, 0);

  std::vector<WorldBox> boxes;
  for (const Bone& b : ph.bones) boxes.push_back(world_box(b));
  const NoiseTable noise(noise_seed);
  const double h_soft = g.pixel_mm * ph.edge_blur;
  const double h_bone = std::max(g.pixel_mm, 0.6 * g.slice_mm) * ph.edge_blur;  // across the slice too
  std::mutex mutex;

  parallel_for(static_cast<std::size_t>(g.slices), threads, [&](std::size_t ks) {
    throw_if_interrupted();
    const int k = static_cast<int>(ks);
    const double z = g.origin.z + k * g.slice_mm;
    const SoftSlice soft_plane = soft_slice(ph, track_at(ph, z));
    const std::size_t n = v.slice_voxels();
    std::vector<float> soft(n), best(n, static_cast<float>(kFar));
    std::vector<int16_t> owner(n, -1);
    uint8_t* lab = out.labels.data() + static_cast<std::size_t>(k) * n;
    for (int j = 0; j < g.rows; ++j)
      soft_tissue_row(soft_plane, g.origin.y + j * g.pixel_mm, g.origin.x, g.pixel_mm, g.columns, h_soft,
                      soft.data() + static_cast<std::size_t>(j) * g.columns);

    std::vector<FractureFootprint> prints;
    std::array<long, 16> changed{};
    for (std::size_t bi = 0; bi < ph.bones.size(); ++bi) {
      const Bone& b = ph.bones[bi];
      const WorldBox& wb = boxes[bi];
      if (z < wb.lo.z - h_bone || z > wb.hi.z + h_bone) continue;
      const int i0 = std::max(0, static_cast<int>(std::floor((wb.lo.x - h_bone - g.origin.x) / g.pixel_mm)));
      const int i1 = std::min(g.columns - 1, static_cast<int>(std::ceil((wb.hi.x + h_bone - g.origin.x) / g.pixel_mm)));
      const int j0 = std::max(0, static_cast<int>(std::floor((wb.lo.y - h_bone - g.origin.y) / g.pixel_mm)));
      const int j1 = std::min(g.rows - 1, static_cast<int>(std::ceil((wb.hi.y + h_bone - g.origin.y) / g.pixel_mm)));
      const bool fractured = !b.fractures.empty();
      FractureFootprint fp;
      fp.label = b.label;
      fp.slice = k;
      fp.x0 = g.columns;
      fp.y0 = g.rows;
      fp.x1 = fp.y1 = -1;
      // Blocks of pixels whose centre is far from the bone are skipped whole: the distance changes by at most
      // about the block's half diagonal across it.
      const int block = 8;
      const double half_diag = 0.5 * std::sqrt(2.0) * block * g.pixel_mm;
      const bool blocks = half_diag + h_bone + 1.0 < kFar;
      for (int bj = j0; bj <= j1; bj += block)
        for (int bi0 = i0; bi0 <= i1; bi0 += block) {
          const int bj1 = std::min(j1, bj + block - 1), bi1 = std::min(i1, bi0 + block - 1);
          if (blocks) {
            const V3 pc = b.to_local(
                {g.origin.x + 0.5 * (bi0 + bi1) * g.pixel_mm, g.origin.y + 0.5 * (bj + bj1) * g.pixel_mm, z});
            double dc = b.distance(pc, true);
            if (fractured) dc = std::min(dc, b.distance(pc, false));
            if (dc > half_diag + h_bone + 1.0) continue;
          }
          for (int j = bj; j <= bj1; ++j)
            for (int i = bi0; i <= bi1; ++i) {
              const V3 p = b.to_local({g.origin.x + i * g.pixel_mm, g.origin.y + j * g.pixel_mm, z});
              const std::size_t idx = static_cast<std::size_t>(j) * g.columns + i;
              const double d = b.distance(p, true);
              double d_label = d;
              if (fractured) {
                const double d0 = b.distance(p, false);
                d_label = std::min(d, d0);  // the fracture zone stays part of the vertebra's label
                auto composite = [&](double dd, bool with) {
                  const double c = coverage(dd, h_bone);
                  return c > 0 ? soft[idx] + (b.bone_hu(p, -dd, h_bone, with) - soft[idx]) * c : soft[idx];
                };
                if (std::min(d, d0) < h_bone && std::abs(composite(d, true) - composite(d0, false)) > kFractureHu) {
                  ++fp.pixels;
                  fp.x0 = std::min(fp.x0, i);
                  fp.y0 = std::min(fp.y0, j);
                  fp.x1 = std::max(fp.x1, i);
                  fp.y1 = std::max(fp.y1, j);
                }
              }
              if (d < best[idx]) {
                best[idx] = static_cast<float>(d);
                owner[idx] = static_cast<int16_t>(bi);
              }
              if (d_label < 0 && b.label > 0) lab[idx] = static_cast<uint8_t>(b.label);
            }
        }
      if (fp.pixels > 0) {
        changed[static_cast<std::size_t>(b.label)] += fp.pixels;
        prints.push_back(fp);
      }
    }

    int16_t* dst = v.slice(k);
    const uint64_t base = static_cast<uint64_t>(k) * n;
    for (int j = 0; j < g.rows; ++j)
      for (int i = 0; i < g.columns; ++i) {
        const std::size_t idx = static_cast<std::size_t>(j) * g.columns + i;
        double hu = soft[idx];
        if (owner[idx] >= 0 && best[idx] < h_bone) {
          const Bone& b = ph.bones[static_cast<std::size_t>(owner[idx])];
          const V3 p = b.to_local({g.origin.x + i * g.pixel_mm, g.origin.y + j * g.pixel_mm, z});
          hu += (b.bone_hu(p, -best[idx], h_bone, true) - hu) * coverage(best[idx], h_bone);
        }
        hu += ph.noise_sd * noise.at(base + idx);
        dst[idx] = static_cast<int16_t>(std::floor(std::clamp(hu, -1024.0, 3071.0) + 0.5));
      }

    std::lock_guard<std::mutex> lock(mutex);
    for (std::size_t l = 0; l < changed.size(); ++l) out.changed_voxels[l] += changed[l];
    out.footprints.insert(out.footprints.end(), prints.begin(), prints.end());
  });
  // Threads finish in any order: sort so that outputs do not depend on scheduling.
  std::sort(out.footprints.begin(), out.footprints.end(), [](const FractureFootprint& a, const FractureFootprint& b) {
    return a.slice != b.slice ? a.slice < b.slice : a.label < b.label;
  });
  return out;
}

}  // namespace cspine::synth
