#include "pipeline/prefetcher.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/interrupt.h"
#include "util/log.h"

namespace cspine {

Prefetcher::Prefetcher(Loader load, std::vector<std::string> uids, std::size_t depth, bool background)
    : load_(std::move(load)), uids_(std::move(uids)), depth_(depth), background_(background) {
  if (depth_ > 0 && !background_) worker_ = std::thread([this] { produce(0); });
}

Prefetcher::~Prefetcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  if (worker_.joinable()) worker_.join();
}

std::optional<PreparedStudy> Prefetcher::next() {
  if (depth_ == 0 || (background_ && next_ == 0)) {
    if (next_ >= uids_.size() || interrupted()) return std::nullopt;
    PreparedStudy p = load_(uids_[next_++]);
    if (depth_ > 0) worker_ = std::thread([this] { produce(1); });
    return p;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [this] { return !queue_.empty() || finished_; });
  if (queue_.empty()) return std::nullopt;
  PreparedStudy p = std::move(queue_.front());
  queue_.pop_front();
  changed_.notify_all();
  return p;
}

void Prefetcher::produce(std::size_t first) {
  // Linux scheduling priority is per thread: this lowers the loading thread alone (best effort).
  if (background_) {
    if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 19) == 0)
      CSPINE_DEBUG("prefetch: loading up to {} studies ahead at nice 19", depth_);
    else
      CSPINE_DEBUG("prefetch: cannot lower the loading thread's priority: {}", std::strerror(errno));
  } else {
    CSPINE_DEBUG("prefetch: loading up to {} studies ahead", depth_);
  }
  for (std::size_t i = first; i < uids_.size(); ++i) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [this] { return queue_.size() < depth_ || stop_; });
      if (stop_) break;
    }
    if (interrupted()) break;
    PreparedStudy p = load_(uids_[i]);
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(p));
    changed_.notify_all();
  }
  std::lock_guard<std::mutex> lock(mutex_);
  finished_ = true;
  changed_.notify_all();
}

}  // namespace cspine
