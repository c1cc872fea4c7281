// Shared by the libFuzzer targets and their replay drivers: a private scratch folder per process (the code
// under test reads files, not buffers), quiet logging, and splitting one input into several files.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cspine::fuzz {

// This process's scratch folder: /dev/shm/cspine-fuzz-<pid> when /dev/shm exists (no disk I/O), otherwise
// under $TMPDIR or /tmp. Created on first use, removed at normal exit; folders left by processes that died
// (a crash is the point of fuzzing) are removed by the next process that starts.
const std::string& work_dir();

// Writes `size` bytes to `dir`/`name` (replacing the file) and returns its path.
std::string write_file(const std::string& dir, const std::string& name, const uint8_t* data, std::size_t size);

// work_dir()/`name`, emptied (or created).
std::string fresh_dir(const std::string& name);

// Splits the input at every occurrence of `marker`, into at most `max_parts` parts (the last keeps the rest).
std::vector<std::string> split(const uint8_t* data, std::size_t size, const std::string& marker, std::size_t max_parts);

// Turns cspine's logging off (the code under test logs every skipped file).
void quiet();

}  // namespace cspine::fuzz
