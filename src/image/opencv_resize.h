// Resizing with OpenCV's own arithmetic (cv::resize), for models trained on OpenCV-resized inputs (contract
// input.resize "opencv_nearest" / "opencv_linear"): a re-implementation would differ in the last bits, and
// INTER_LINEAR on float64 data uses float32 coefficients, which only OpenCV itself reproduces.
#pragma once
#include <vector>

#include "cspine/contract.h"

namespace cspine {

// Resizes `channels` interleaved float64 planes (rows x cols x channels, C order: what numpy's H x W x C array
// holds) to out_rows x out_cols with `rule` (opencv_nearest or opencv_linear), into `out`
// (out_rows x out_cols x channels). Same size: a copy, as cv::resize does.
void opencv_resize(const double* in, int rows, int cols, int channels, double* out, int out_rows, int out_cols,
                   ResizeRule rule);

}  // namespace cspine
