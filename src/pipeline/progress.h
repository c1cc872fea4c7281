// The batch's progress display: studies done, rate and ETA, as a bar redrawn on a terminal (stderr is a TTY)
// or one log line per study otherwise.
#pragma once
#include <chrono>
#include <cstddef>
#include <string>

namespace cspine {

class Progress {
public:
  // `total`: studies to score in this run; `enabled`: false when logging is quieter than info.
  Progress(std::size_t total, bool enabled);
  // Study number `done` (of total) finished; `what` says how ("patient 0.412, 2.6 s (...)" or "FAILED").
  void study_done(std::size_t done, const std::string& uid, const std::string& what);
  void finish();

  // The text shown after a study (for the log line and the bar): rate over the studies finished in this run
  // and the ETA of the rest, e.g. "0.39 studies/s, ETA 0:01:05".
  std::string rate_text(std::size_t done) const;
  static std::string clock_text(double seconds);  // h:mm:ss

private:
  using Clock = std::chrono::steady_clock;
  std::size_t total_, scored_here_ = 0;
  bool tty_;
  Clock::time_point t0_;
};

}  // namespace cspine
