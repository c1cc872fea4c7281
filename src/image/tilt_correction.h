// Gantry tilt correction: on a tilted acquisition the slices advance along the table, not along their own
// normal, so each slice is shifted in its plane relative to an orthogonal grid. Resampling each slice by
// that shift (ITK, linear interpolation) makes the volume's affine exact, as dcm2niix does.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "cspine/volume.h"

namespace cspine {

// `positions` holds ImagePositionPatient of every slice of `v`, in volume order. The volume's origin,
// axes and slice_positions must already be set (origin = position of slice 0). Pixels shifted in from
// outside the field of view get `fill`. Returns the largest shift applied, in mm.
double correct_gantry_tilt(Volume& v, const std::vector<std::array<double, 3>>& positions, int16_t fill,
                           int threads = 0);

}  // namespace cspine
