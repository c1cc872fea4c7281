#include "pipeline/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cspine/runtime.h"

namespace cspine {

Progress::Progress(std::size_t total, bool enabled)
    : total_(total), tty_(enabled && ::isatty(2)), t0_(Clock::now()) {}

std::string Progress::clock_text(double s) {
  const long t = std::lround(s);
  char b[32];
  std::snprintf(b, sizeof b, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  return b;
}

std::string Progress::rate_text(std::size_t done) const {
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0_).count();
  const double rate = elapsed > 0 ? static_cast<double>(scored_here_) / elapsed : 0.0;
  const double eta = rate > 0 && done <= total_ ? static_cast<double>(total_ - done) / rate : 0.0;
  char tail[96];
  std::snprintf(tail, sizeof tail, "%.2f studies/s, ETA %s", rate, clock_text(eta).c_str());
  return tail;
}

void Progress::study_done(std::size_t done, const std::string& uid, const std::string& what) {
  ++scored_here_;
  const std::string tail = rate_text(done);
  if (!tty_) {
    log_info("[" + std::to_string(done) + "/" + std::to_string(total_) + "] " + uid + ": " + what + " (" + tail + ")");
    return;
  }
  const int width = 30;
  const int filled = total_ ? static_cast<int>(width * done / total_) : width;
  std::string bar(static_cast<std::size_t>(std::min(filled, width)), '#');
  bar.resize(static_cast<std::size_t>(width), '.');
  std::fprintf(stderr, "\r\033[K[%s] %zu/%zu studies, %s", bar.c_str(), done, total_, tail.c_str());
  if (done == total_) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

void Progress::finish() {
  if (tty_) std::fprintf(stderr, "\n");
}

}  // namespace cspine
