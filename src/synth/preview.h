// Preview images of a generated study: an axial slice and a mid-sagittal reformat, bone window, vertebra
// labels tinted, fracture footprints outlined in red, written as RGB PNG with ITK.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cspine/volume.h"
#include "synth/render.h"

namespace cspine::synth {

// Writes `<prefix>_axial.png` and `<prefix>_sagittal.png`. The axial slice is the one where a visible
// fracture is largest, or the middle of C4 when there is none.
void write_previews(const Volume& volume, const std::vector<uint8_t>& labels,
                    const std::vector<FractureFootprint>& prints, const std::vector<int>& fractured,
                    const std::string& prefix);

}  // namespace cspine::synth
