// Loads the studies ahead of the models in a thread of its own: up to `depth` prepared studies wait in a
// queue, so decoding and preprocessing the next study overlap inference on this one while memory stays bounded
// (depth + 1 volumes). With depth 0 everything runs in the caller's thread. Studies come out in plan order.
// `background`: the loading thread (and the decoding threads it starts, which inherit it) runs at the lowest
// priority (nice 19), so on a CPU whose cores the models keep busy it takes only what they leave idle instead
// of competing with them; the first study, which nothing could hide, is loaded in the caller's thread at normal
// priority before that thread starts.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cspine/predict.h"

namespace cspine {

class Prefetcher {
public:
  // `load` prepares one study (Predictor::prepare in predict; it must not throw: errors travel in the result).
  using Loader = std::function<PreparedStudy(const std::string& study_uid)>;
  Prefetcher(Loader load, std::vector<std::string> uids, std::size_t depth, bool background);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // The next study in order; nullopt when every study was handed out (or an interrupt stopped the loading).
  std::optional<PreparedStudy> next();

private:
  void produce(std::size_t first);

  Loader load_;
  std::vector<std::string> uids_;
  std::size_t depth_, next_ = 0;
  bool background_;
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<PreparedStudy> queue_;
  bool stop_ = false, finished_ = false;
};

}  // namespace cspine
