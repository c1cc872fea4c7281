#include "image/opencv_resize.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "cspine/error.h"

namespace cspine {

void opencv_resize(const double* in, int rows, int cols, int channels, double* out, int out_rows, int out_cols,
                   ResizeRule rule) {
  if (rows < 1 || cols < 1 || out_rows < 1 || out_cols < 1 || channels < 1 || channels > CV_CN_MAX)
    throw Error(ExitCode::internal, "opencv_resize: bad sizes");
  int interpolation = cv::INTER_LINEAR;
  if (rule == ResizeRule::opencv_nearest) interpolation = cv::INTER_NEAREST;
  else if (rule != ResizeRule::opencv_linear) throw Error(ExitCode::internal, "opencv_resize: not an OpenCV rule");
  const cv::Mat src(rows, cols, CV_64FC(channels), const_cast<double*>(in));
  cv::Mat dst(out_rows, out_cols, CV_64FC(channels), out);
  cv::resize(src, dst, cv::Size(out_cols, out_rows), 0, 0, interpolation);
  if (dst.data != reinterpret_cast<uchar*>(out))  // cv::resize reallocated: never for a matching header
    throw Error(ExitCode::internal, "opencv_resize: OpenCV did not write into the given buffer");
}

}  // namespace cspine
