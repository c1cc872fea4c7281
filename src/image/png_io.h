// RGB PNG output through ITK's PNG writer, for the small figures cspine draws (previews, ROC plots).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace cspine {

// `rgb` holds width*height*3 bytes, rows top to bottom. Written atomically; throws OutputError.
void write_rgb_png(const std::string& path, int width, int height, const std::vector<uint8_t>& rgb);

}  // namespace cspine
