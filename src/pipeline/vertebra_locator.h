// Stage 2, the vertebra locator: the segmentation's labels (model grid) -> each vertebra's extent on the CT grid.
// Cleanup first (only the largest 3-D component of each of C1..C7 is kept, ITK), then the extents through the
// nearest-neighbour rule that maps the model grid onto the CT grid, without building the full-size map.
#pragma once
#include <array>
#include <optional>

#include "cspine/predict.h"
#include "cspine/preprocess.h"

namespace cspine {

struct LocatedVertebrae {
  std::array<std::optional<VertebraExtent>, 7> extents;  // C1..C7 on the CT grid; nullopt when not found
  std::size_t cleanup_voxels = 0;                       // model-grid voxels removed as small components
};

// Cleans `grid` in place (contract cleanup "largest_component"; "none" leaves it) and locates C1..C7 on a CT grid
// of ct_cols x ct_rows (same slices).
LocatedVertebrae locate_vertebrae(LabelGrid& grid, int ct_cols, int ct_rows, CleanupRule cleanup = CleanupRule::largest_component);

}  // namespace cspine
