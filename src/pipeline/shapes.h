// Internal: a tensor shape as text for messages ("[7, 24]").
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace cspine {

inline std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s;
  for (int64_t d : shape) s += (s.empty() ? "" : ", ") + std::to_string(d);
  return "[" + s + "]";
}

}  // namespace cspine
