#include "util/npy.h"

#include <cstdint>
#include <fstream>

#include "cspine/error.h"
#include "util/atomic_file.h"

namespace cspine {

namespace {

void write_npy(const std::string& path, const char* descr, const void* data, std::size_t count, std::size_t item,
               const std::vector<std::size_t>& shape) {
  std::size_t n = 1;
  std::string dims;
  for (std::size_t d : shape) {
    n *= d;
    dims += std::to_string(d) + ", ";
  }
  if (n != count) throw Error(ExitCode::internal, "npy: shape does not match the data");
  if (shape.size() > 1) dims.resize(dims.size() - 1);  // "(a, b)"; a 1-d shape keeps its comma: "(a,)"
  if (shape.size() > 1) dims.pop_back();
  std::string header = "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  const std::size_t preamble = 10;  // magic (6) + version (2) + header length (2)
  header.append((64 - (preamble + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream f(tmp, std::ios::binary);
    const char magic[] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
    f.write(magic, sizeof magic);
    const auto len = static_cast<uint16_t>(header.size());
    const char len_bytes[] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
    f.write(len_bytes, 2);
    f.write(header.data(), static_cast<std::streamsize>(header.size()));
    f.write(static_cast<const char*>(data), static_cast<std::streamsize>(count * item));
    if (!f) throw OutputError("cannot write '" + path + "'");
  });
}

}  // namespace

void write_npy_f32(const std::string& path, const std::vector<float>& data, const std::vector<std::size_t>& shape) {
  write_npy(path, "<f4", data.data(), data.size(), sizeof(float), shape);
}

void write_npy_u8(const std::string& path, const std::vector<uint8_t>& data, const std::vector<std::size_t>& shape) {
  write_npy(path, "|u1", data.data(), data.size(), 1, shape);
}

}  // namespace cspine
