// Outputs appear whole or not at all: write to a temporary sibling, then rename over the target.
#pragma once
#include <functional>
#include <string>

namespace cspine {

// Calls `write(tmp_path)` with a temporary path in the target's folder that keeps the target's
// extension (so format-by-extension writers such as ITK still work), then renames it to `path`.
// On any failure the temporary file is removed and OutputError names `path`.
void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write);

// Writes `text` to `path` atomically (write_atomically with a plain stream).
void write_text_atomically(const std::string& path, const std::string& text);

// Fails early with OutputError when the folder that would hold `path` is missing or not writable.
void check_output_path(const std::string& path);

}  // namespace cspine
