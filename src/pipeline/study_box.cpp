#include "pipeline/study_box.h"

#include <algorithm>

#include "cspine/error.h"

namespace cspine {

namespace {
bool vertebra(uint8_t l) { return l >= 1 && l <= 7; }
}  // namespace

StudyBox locate_study_box(const LabelGrid& g, const std::vector<int>& order, int min_voxels) {
  if (order.size() != static_cast<std::size_t>(g.slices))
    throw Error(ExitCode::internal, "locate_study_box: slice order does not match the label grid");
  const std::size_t plane = static_cast<std::size_t>(g.rows) * g.cols;
  std::vector<long> per_slice(order.size(), 0), per_row(static_cast<std::size_t>(g.rows), 0),
      per_col(static_cast<std::size_t>(g.cols), 0);
  for (std::size_t i = 0; i < order.size(); ++i) {
    const uint8_t* p = g.labels.data() + static_cast<std::size_t>(order[i]) * plane;
    for (int r = 0; r < g.rows; ++r)
      for (int c = 0; c < g.cols; ++c)
        if (vertebra(p[static_cast<std::size_t>(r) * g.cols + c])) {
          ++per_slice[i];
          ++per_row[static_cast<std::size_t>(r)];
          ++per_col[static_cast<std::size_t>(c)];
        }
  }
  // First and last plane with at least min_voxels; [0, n) when none (crop_voxel's for/else defaults).
  const auto range = [&](const std::vector<long>& count, int& lo, int& hi) {
    const int n = static_cast<int>(count.size());
    lo = 0;
    hi = n;
    for (int i = 0; i < n; ++i)
      if (count[static_cast<std::size_t>(i)] >= min_voxels) {
        lo = i;
        break;
      }
    for (int i = n - 1; i >= 0; --i)
      if (count[static_cast<std::size_t>(i)] >= min_voxels) {
        hi = i + 1;
        break;
      }
  };
  StudyBox b;
  range(per_slice, b.slice0, b.slice1);
  range(per_row, b.row0, b.row1);
  range(per_col, b.col0, b.col1);
  b.grid_rows = g.rows;
  b.grid_cols = g.cols;
  for (int i = b.slice0; i < b.slice1; ++i) {
    std::array<long, 8> count{};
    const uint8_t* p = g.labels.data() + static_cast<std::size_t>(order[static_cast<std::size_t>(i)]) * plane;
    for (int r = b.row0; r < b.row1; ++r)
      for (int c = b.col0; c < b.col1; ++c) {
        const uint8_t l = p[static_cast<std::size_t>(r) * g.cols + c];
        if (vertebra(l)) ++count[l];
      }
    int best = 0;  // the most frequent label; a tie goes to the smaller one (np.unique sorts, argmax is first)
    for (int l = 1; l <= 7; ++l)
      if (count[static_cast<std::size_t>(l)] > count[static_cast<std::size_t>(best)] ||
          (best == 0 && count[static_cast<std::size_t>(l)] > 0))
        best = l;
    b.slice_class.push_back(best);
  }
  return b;
}

std::vector<int> linspace_floor(int n, int count) {
  std::vector<int> out;
  if (count < 1) return out;
  if (count == 1) return {0};
  const double step = static_cast<double>(n - 1) / static_cast<double>(count - 1);
  for (int i = 0; i < count - 1; ++i) out.push_back(static_cast<int>(static_cast<double>(i) * step));
  out.push_back(n - 1);
  return out;
}

std::array<VertebraResult, 7> plan_box_vertebrae(const StudyBox& box, const std::vector<int>& order,
                                                 const std::array<std::optional<VertebraExtent>, 7>& extents,
                                                 const ModelContract& cc) {
  std::array<VertebraResult, 7> plan;
  for (int v = 0; v < 7; ++v) {
    VertebraResult& vr = plan[static_cast<std::size_t>(v)];
    vr.extent = extents[static_cast<std::size_t>(v)];
    std::vector<int> mine;  // model-order positions whose class is this vertebra
    for (std::size_t j = 0; j < box.slice_class.size(); ++j)
      if (box.slice_class[j] == v + 1) mine.push_back(box.slice0 + static_cast<int>(j));
    if (static_cast<int>(mine.size()) >= cc.slices_per_vertebra) {
      std::vector<int> picked;
      for (int i : linspace_floor(static_cast<int>(mine.size()), cc.slices_per_vertebra))
        picked.push_back(mine[static_cast<std::size_t>(i)]);
      mine = picked;
    }
    if (mine.empty()) {
      vr.fallback = Fallback::not_found;
    } else if (static_cast<int>(mine.size()) < cc.min_slices) {
      vr.fallback = Fallback::too_few_slices;
    } else {
      for (int i : mine) vr.picked.push_back(order[static_cast<std::size_t>(i)]);
    }
  }
  return plan;
}

}  // namespace cspine
