#include "util/atomic_file.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <system_error>

#include "cspine/error.h"

namespace fs = std::filesystem;

namespace cspine {

namespace {
// ".nii.gz" for "a/b.nii.gz", ".csv" for "x.csv".
std::string full_extension(const fs::path& p) {
  const std::string name = p.filename().string();
  static const char* doubles[] = {".nii.gz", ".tar.gz", ".json.gz"};
  for (const char* d : doubles) {
    const std::string ds(d);
    if (name.size() > ds.size() && name.compare(name.size() - ds.size(), ds.size(), ds) == 0) return ds;
  }
  return p.extension().string();
}
}  // namespace

void check_output_path(const std::string& path) {
  fs::path p(path);
  fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw OutputError("cannot write '" + path + "': folder '" + dir.string() + "' does not exist");
  if (::access(dir.c_str(), W_OK) != 0) throw OutputError("cannot write '" + path + "': folder '" + dir.string() + "' is not writable");
  if (fs::is_directory(p, ec)) throw OutputError("cannot write '" + path + "': it is a folder");
}

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write) {
  check_output_path(path);
  fs::path target(path);
  const std::string ext = full_extension(target);
  std::string stem = target.filename().string();
  stem = stem.substr(0, stem.size() - ext.size());
  fs::path tmp = target.parent_path() / ("." + stem + ".tmp-" + std::to_string(::getpid()) + ext);
  try {
    write(tmp.string());
    std::error_code ec;
    fs::rename(tmp, target, ec);
    if (ec) throw OutputError("cannot write '" + path + "': rename failed: " + ec.message());
  } catch (const Error&) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  } catch (const std::exception& e) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw OutputError("cannot write '" + path + "': " + e.what());
  }
}

void write_text_atomically(const std::string& path, const std::string& text) {
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    if (!out.flush()) throw OutputError("cannot write '" + path + "'");
  });
}

}  // namespace cspine
