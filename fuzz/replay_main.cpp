// Replay driver: the main() that the normal (gcc) build links with a fuzz target's LLVMFuzzerTestOneInput, so
// that ctest runs committed reproducers and seeds without clang or libFuzzer.
//
//   replay_<target> [--skip LIST] PATH...
//
// Every PATH is a file or a folder (all regular files under it, recursively, in sorted order; dot files and
// README* are ignored). LIST names reproducers of bugs still open, one "<target>/<file>" per line ('#' starts
// a comment): those are skipped, unless CSPINE_REPLAY_ALL=1. Each file's name is printed before it runs, so a
// crash names its input. Exit 0 when every input ran; a crash or an escaping exception ends the process.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace fs = std::filesystem;

namespace {

bool ignored(const fs::path& p) {
  const std::string name = p.filename().string();
  return name.empty() || name[0] == '.' || name.rfind("README", 0) == 0;
}

std::set<std::string> read_skip_list(const std::string& path) {
  std::set<std::string> out;
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "replay: cannot read skip list %s\n", path.c_str());
    std::exit(2);
  }
  std::string line;
  while (std::getline(in, line)) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    const auto b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos) continue;
    const auto e = line.find_last_not_of(" \t\r");
    out.insert(line.substr(b, e - b + 1));
  }
  return out;
}

// "<parent folder>/<file>", the form the skip list uses.
std::string short_name(const fs::path& p) { return (p.parent_path().filename() / p.filename()).string(); }

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> roots;
  std::set<std::string> skip;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--skip") == 0 && i + 1 < argc) {
      skip = read_skip_list(argv[++i]);
    } else if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::printf("usage: %s [--skip LIST] FILE_OR_FOLDER...\n", argv[0]);
      return 0;
    } else {
      roots.push_back(argv[i]);
    }
  }
  const char* all = std::getenv("CSPINE_REPLAY_ALL");
  if (all && std::strcmp(all, "1") == 0) skip.clear();

  std::vector<fs::path> files;
  for (const auto& r : roots) {
    std::error_code ec;
    if (fs::is_regular_file(r, ec)) {
      files.emplace_back(r);
    } else if (fs::is_directory(r, ec)) {
      std::vector<fs::path> found;
      for (fs::recursive_directory_iterator it(r, ec), end; !ec && it != end; it.increment(ec))
        if (it->is_regular_file() && !ignored(it->path())) found.push_back(it->path());
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else {
      std::fprintf(stderr, "replay: %s does not exist\n", r.c_str());
      return 2;
    }
  }

  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  std::size_t ran = 0, skipped = 0;
  for (const auto& f : files) {
    if (skip.count(short_name(f))) {
      std::printf("replay: skipped (open bug, see the skip list): %s\n", f.c_str());
      ++skipped;
      continue;
    }
    std::ifstream in(f, std::ios::binary);
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.eof() && in.fail()) {
      std::fprintf(stderr, "replay: cannot read %s\n", f.c_str());
      return 2;
    }
    std::printf("replay: %s (%zu bytes)\n", f.c_str(), bytes.size());
    std::fflush(stdout);
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    ++ran;
  }
  std::printf("replay: %zu input(s) ran, %zu skipped\n", ran, skipped);
  return 0;
}
