// Rasterises a Phantom onto an axial CT grid: HU with partial volume and noise, the vertebra label map, and
// where each fracture changed the image (which becomes the labels and the bounding boxes).
#pragma once
#include <cstdint>
#include <vector>

#include "cspine/volume.h"
#include "synth/anatomy.h"

namespace cspine::synth {

struct Grid {
  int columns = 512, rows = 512, slices = 300;
  double pixel_mm = 0.4;  // square pixels
  double slice_mm = 0.8;  // centre-to-centre
  V3 origin;              // LPS centre of voxel (0, 0, 0); slices go up in z
};

// Pixels of one slice where a fracture changed the image by more than kFractureHu.
struct FractureFootprint {
  int label = 0;                       // vertebra
  int slice = 0;                       // k in the grid (0 = lowest)
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // inclusive pixel box (column, row)
  long pixels = 0;
};

struct Rendered {
  Volume volume;                              // HU, geometry of the grid (identity direction)
  std::vector<uint8_t> labels;                // same layout as volume.hu
  std::vector<FractureFootprint> footprints;  // one per (fractured vertebra, slice) with changed pixels
  std::vector<long> changed_voxels;           // per label 0..15: voxels changed by fractures
};

inline constexpr double kFractureHu = 100.0;  // an image change smaller than this is not a visible fracture

Rendered render(const Phantom& phantom, const Grid& grid, uint64_t noise_seed, int threads);

}  // namespace cspine::synth
