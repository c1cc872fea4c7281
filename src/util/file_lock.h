// An advisory lock that keeps two cspine runs from writing the same outputs at once (flock(2) on a lock file
// beside them). The kernel drops it when the process ends, however it ends, so a killed run never leaves a
// stale lock behind; the file itself is removed when the lock is released normally.
#pragma once
#include <string>

namespace cspine {

class FileLock {
public:
  // Takes the lock on `path` (created if needed) or throws OutputError saying which process holds it, naming
  // `what` (for example "the output 'sub.csv'").
  FileLock(const std::string& path, const std::string& what);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace cspine
