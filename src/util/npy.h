// NumPy .npy files (format 1.0, little-endian float32), for handing tensors to Python tests and tools.
#pragma once
#include <string>
#include <vector>

namespace cspine {

// Writes `data` with `shape` (C order) to `path` atomically. Throws OutputError.
void write_npy_f32(const std::string& path, const std::vector<float>& data, const std::vector<std::size_t>& shape);

}  // namespace cspine
