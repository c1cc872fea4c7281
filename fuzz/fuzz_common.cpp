#include "fuzz_common.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cspine/runtime.h"

namespace fs = std::filesystem;

namespace cspine::fuzz {

namespace {

constexpr const char* kPrefix = "cspine-fuzz-";

fs::path scratch_root() {
  std::error_code ec;
  if (fs::is_directory("/dev/shm", ec)) return "/dev/shm";
  if (const char* t = std::getenv("TMPDIR"); t && *t) return t;
  return "/tmp";
}

// Removes cspine-fuzz-<pid> folders whose process is gone (it crashed, or was killed on a timeout).
void remove_stale(const fs::path& root) {
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(kPrefix, 0) != 0) continue;
    char* rest = nullptr;
    const long pid = std::strtol(name.c_str() + std::char_traits<char>::length(kPrefix), &rest, 10);
    if (pid <= 0 || *rest != '\0' || pid == static_cast<long>(getpid())) continue;
    if (kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    std::error_code rec;
    fs::remove_all(it->path(), rec);
  }
}

struct Scratch {
  std::string path;
  Scratch() {
    const fs::path root = scratch_root();
    remove_stale(root);
    path = (root / (kPrefix + std::to_string(getpid()))).string();
    std::error_code ec;
    fs::remove_all(path, ec);
    fs::create_directories(path, ec);
    if (ec) {
      std::fprintf(stderr, "fuzz: cannot create scratch folder %s: %s\n", path.c_str(), ec.message().c_str());
      std::abort();
    }
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

}  // namespace

const std::string& work_dir() {
  static Scratch scratch;
  return scratch.path;
}

std::string write_file(const std::string& dir, const std::string& name, const uint8_t* data, std::size_t size) {
  const std::string path = dir + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (size) out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

std::string fresh_dir(const std::string& name) {
  const fs::path p = fs::path(work_dir()) / name;
  std::error_code ec;
  fs::remove_all(p, ec);
  fs::create_directories(p, ec);
  if (ec) {
    std::fprintf(stderr, "fuzz: cannot create %s: %s\n", p.c_str(), ec.message().c_str());
    std::abort();
  }
  return p.string();
}

std::vector<std::string> split(const uint8_t* data, std::size_t size, const std::string& marker, std::size_t max_parts) {
  const std::string all(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (parts.size() + 1 < max_parts) {
    const std::size_t at = all.find(marker, start);
    if (at == std::string::npos) break;
    parts.push_back(all.substr(start, at - start));
    start = at + marker.size();
  }
  parts.push_back(all.substr(start));
  return parts;
}

void quiet() { set_log_level(LogLevel::off); }

}  // namespace cspine::fuzz
