#include "util/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cspine/error.h"

namespace cspine {

FileLock::FileLock(const std::string& path, const std::string& what) : path_(path) {
  // The lock file may be removed by the run that held it between our open and our flock: then we hold a lock
  // on a file nobody else sees, so check that the path still names what we locked, and try again if not.
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw OutputError("cannot create the lock file '" + path + "': " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      char buf[32] = {0};
      const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
      ::close(fd);
      if (err == EWOULDBLOCK) {
        std::string holder = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string("another process");
        while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
        throw OutputError("another cspine run (process " + holder + ") is writing " + what +
                          "; wait for it to finish or choose another output (lock: '" + path + "')");
      }
      throw OutputError("cannot lock '" + path + "': " + std::strerror(err));
    }
    struct stat a {}, b {};
    if (::fstat(fd, &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
      const std::string pid = std::to_string(::getpid()) + "\n";
      if (::ftruncate(fd, 0) == 0 && ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
        // the pid is only for messages
      }
      fd_ = fd;
      return;
    }
    ::close(fd);
  }
  throw OutputError("cannot lock '" + path + "': it keeps being replaced");
}

FileLock::~FileLock() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());  // while still holding the lock: see the inode check in the constructor
  ::close(fd_);
}

}  // namespace cspine
