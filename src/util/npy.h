// NumPy .npy files (format 1.0, little-endian float32 or uint8), for handing tensors to Python tests and tools.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace cspine {

// Writes `data` with `shape` (C order) to `path` atomically. Throws OutputError.
void write_npy_f32(const std::string& path, const std::vector<float>& data, const std::vector<std::size_t>& shape);
void write_npy_u8(const std::string& path, const std::vector<uint8_t>& data, const std::vector<std::size_t>& shape);

}  // namespace cspine
