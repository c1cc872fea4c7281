#include "synth/preview.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "image/png_io.h"

namespace cspine::synth {

namespace {
constexpr std::array<std::array<int, 3>, 11> kColours{{{0, 0, 0},
                                                       {230, 25, 75},
                                                       {60, 180, 75},
                                                       {255, 225, 25},
                                                       {0, 130, 200},
                                                       {245, 130, 48},
                                                       {145, 30, 180},
                                                       {70, 240, 240},
                                                       {240, 50, 230},
                                                       {210, 245, 60},
                                                       {170, 110, 40}}};

struct Canvas {
  int w, h;
  std::vector<std::array<double, 3>> px;
  Canvas(int width, int height) : w(width), h(height), px(static_cast<std::size_t>(width) * height) {}
  std::array<double, 3>& at(int x, int y) { return px[static_cast<std::size_t>(y) * w + x]; }
  void set(int x, int y, double hu, int label) {
    const double g = std::clamp((hu + 500.0) / 1800.0, 0.0, 1.0) * 255.0;  // bone window, level 400 width 1800
    auto& c = at(x, y);
    c = {g, g, g};
    if (label > 0 && label < static_cast<int>(kColours.size()))
      for (int i = 0; i < 3; ++i)
        c[static_cast<std::size_t>(i)] =
            0.65 * g + 0.35 * kColours[static_cast<std::size_t>(label)][static_cast<std::size_t>(i)];
  }
  void rect(int x0, int y0, int x1, int y1) {
    for (int x = std::max(0, x0); x <= std::min(w - 1, x1); ++x)
      for (int y : {y0, y1})
        if (y >= 0 && y < h) at(x, y) = {255, 0, 0};
    for (int y = std::max(0, y0); y <= std::min(h - 1, y1); ++y)
      for (int x : {x0, x1})
        if (x >= 0 && x < w) at(x, y) = {255, 0, 0};
  }
  void write(const std::string& path) const {
    std::vector<uint8_t> rgb;
    rgb.reserve(px.size() * 3);
    for (const auto& c : px)
      for (double v : c) rgb.push_back(static_cast<uint8_t>(std::lround(std::clamp(v, 0.0, 255.0))));
    write_rgb_png(path, w, h, rgb);
  }
};
}  // namespace

void write_previews(const Volume& v, const std::vector<uint8_t>& labels, const std::vector<FractureFootprint>& prints,
                    const std::vector<int>& fractured, const std::string& prefix) {
  const int nx = v.size[0], ny = v.size[1], nz = v.size[2];
  auto label_at = [&](int i, int j, int k) {
    return labels[static_cast<std::size_t>(k) * v.slice_voxels() + static_cast<std::size_t>(j) * nx + i];
  };
  auto counts = [&](int label) { return label >= 1 && label <= 7 && fractured[static_cast<std::size_t>(label - 1)]; };
  // Axial slice: the biggest visible fracture footprint, else the middle of C4.
  int axial = nz / 2;
  long best = 0;
  for (const auto& p : prints)
    if (counts(p.label) && p.pixels > best) {
      best = p.pixels;
      axial = p.slice;
    }
  long sum_i = 0, n_lab = 0;
  int c4_lo = nz, c4_hi = -1;
  for (int k = 0; k < nz; ++k)
    for (int j = 0; j < ny; j += 2)
      for (int i = 0; i < nx; i += 2)
        if (label_at(i, j, k) > 0) {
          sum_i += i;
          ++n_lab;
          if (label_at(i, j, k) == 4) {
            c4_lo = std::min(c4_lo, k);
            c4_hi = std::max(c4_hi, k);
          }
        }
  if (best == 0 && c4_hi >= 0) axial = (c4_lo + c4_hi) / 2;
  Canvas a(nx, ny);
  for (int j = 0; j < ny; ++j)
    for (int i = 0; i < nx; ++i) a.set(i, j, v.at(i, j, axial), label_at(i, j, axial));
  for (const auto& p : prints)
    if (counts(p.label) && p.slice == axial) a.rect(p.x0 - 2, p.y0 - 2, p.x1 + 2, p.y1 + 2);
  a.write(prefix + "_axial.png");

  // Mid-sagittal reformat through the spine, resampled to square pixels, head at the top.
  const int col = n_lab > 0 ? static_cast<int>(sum_i / n_lab) : nx / 2;
  const double step = v.spacing[0];
  const int height = std::max(1, static_cast<int>(std::lround((nz - 1) * v.spacing[2] / step)) + 1);
  Canvas s(ny, height);
  for (int y = 0; y < height; ++y) {
    const double kf = (nz - 1) - y * step / v.spacing[2];
    const int k0 = std::clamp(static_cast<int>(std::floor(kf)), 0, nz - 1), k1 = std::min(nz - 1, k0 + 1);
    const double w = std::clamp(kf - k0, 0.0, 1.0);
    const int kn = w < 0.5 ? k0 : k1;
    for (int j = 0; j < ny; ++j) s.set(j, y, (1 - w) * v.at(col, j, k0) + w * v.at(col, j, k1), label_at(col, j, kn));
  }
  for (int label = 1; label <= 7; ++label) {
    if (!counts(label)) continue;
    int k_lo = nz, k_hi = -1, y_lo = ny, y_hi = -1;
    for (const auto& p : prints)
      if (p.label == label) {
        k_lo = std::min(k_lo, p.slice);
        k_hi = std::max(k_hi, p.slice);
        y_lo = std::min(y_lo, p.y0);
        y_hi = std::max(y_hi, p.y1);
      }
    if (k_hi < 0) continue;
    auto row_of = [&](int k) { return static_cast<int>(std::lround(((nz - 1) - k) * v.spacing[2] / step)); };
    s.rect(y_lo - 2, row_of(k_hi) - 2, y_hi + 2, row_of(k_lo) + 2);
  }
  s.write(prefix + "_sagittal.png");
}

}  // namespace cspine::synth
