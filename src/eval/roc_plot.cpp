// The ROC plot: a small software rasteriser (lines, a 5x7 bitmap font) drawing into an RGB buffer that
// write_rgb_png saves (ITK's PNG writer). One curve per label; the legend gives each label's AUC.
#include <cmath>
#include <cstdio>
#include <map>

#include "cspine/error.h"
#include "cspine/evaluate.h"
#include "image/png_io.h"

namespace cspine {

namespace {

struct Rgb {
  unsigned char r, g, b;
};

class Canvas {
public:
  explicit Canvas(int size) : size_(size), px_(static_cast<std::size_t>(size) * size, Rgb{255, 255, 255}) {}
  int size() const { return size_; }
  const Rgb& at(int x, int y) const { return px_[static_cast<std::size_t>(y) * size_ + x]; }
  void set(int x, int y, Rgb c) {
    if (x >= 0 && y >= 0 && x < size_ && y < size_) px_[static_cast<std::size_t>(y) * size_ + x] = c;
  }
  void dot(int x, int y, Rgb c, int thick) {
    for (int dy = -(thick / 2); dy <= (thick - 1) / 2; ++dy)
      for (int dx = -(thick / 2); dx <= (thick - 1) / 2; ++dx) set(x + dx, y + dy, c);
  }
  // Bresenham; `dash` > 0 draws dash-long segments with equal gaps.
  void line(int x0, int y0, int x1, int y1, Rgb c, int thick = 1, int dash = 0) {
    const int dx = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    const int dy = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int err = dx + dy, step = 0;
    while (true) {
      if (dash == 0 || (step / dash) % 2 == 0) dot(x0, y0, c, thick);
      ++step;
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) err += dy, x0 += sx;
      if (e2 <= dx) err += dx, y0 += sy;
    }
  }
  void rect(int x0, int y0, int x1, int y1, Rgb c) {
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x) set(x, y, c);
  }
  // 5x7 glyphs scaled by `scale`; returns the width drawn.
  int text(int x, int y, const std::string& s, Rgb c, int scale = 2) {
    static const std::map<char, const char*> font = {
        {'0', "01110100011001110101110011000101110"}, {'1', "00100011000010000100001000010001110"},
        {'2', "01110100010000100010001000100011111"}, {'3', "11111000100010000010000011000101110"},
        {'4', "00010001100101010010111110001000010"}, {'5', "11111100001111000001000011000101110"},
        {'6', "00110010001000011110100011000101110"}, {'7', "11111000010001000100010000100001000"},
        {'8', "01110100011000101110100011000101110"}, {'9', "01110100011000101111000010001001100"},
        {'.', "00000000000000000000000000110001100"}, {'-', "00000000000000011111000000000000000"},
        {'/', "00000000010001000100010001000000000"}, {' ', "00000000000000000000000000000000000"},
        {'A', "01110100011000111111100011000110001"}, {'C', "01110100011000010000100001000101110"},
        {'E', "11111100001000011110100001000011111"}, {'F', "11111100001000011110100001000010000"},
        {'L', "10000100001000010000100001000011111"}, {'N', "10001100011100110101100111000110001"},
        {'O', "01110100011000110001100011000101110"}, {'P', "11110100011000111110100001000010000"},
        {'R', "11110100011000111110101001001010001"}, {'S', "01111100001000001110000010000111110"}, {'T', "11111001000010000100001000010000100"},
        {'U', "10001100011000110001100011000101110"}, {'V', "10001100011000110001100010101000100"},
    };
    int cx = x;
    for (char ch : s) {
      auto it = font.find(ch);
      const char* g = it == font.end() ? font.at(' ') : it->second;
      for (int row = 0; row < 7; ++row)
        for (int col = 0; col < 5; ++col)
          if (g[row * 5 + col] == '1') rect(cx + col * scale, y + row * scale, cx + col * scale + scale - 1, y + row * scale + scale - 1, c);
      cx += 6 * scale;
    }
    return cx - x;
  }

private:
  int size_;
  std::vector<Rgb> px_;
};

const Rgb kColors[kNumLabels] = {{0, 0, 0},      {31, 119, 180}, {255, 127, 14}, {44, 160, 44},
                                 {214, 39, 40},  {148, 103, 189}, {140, 86, 75}, {227, 119, 194}};

}  // namespace

void write_roc_png(const EvaluationResult& r, const std::string& path) {
  const int S = kRocPlotSize;
  Canvas cv(S);
  const int left = 70, right = S - 20, top = 20, bottom = S - 60;
  auto X = [&](double fpr) { return left + static_cast<int>(std::lround(fpr * (right - left))); };
  auto Y = [&](double tpr) { return bottom - static_cast<int>(std::lround(tpr * (bottom - top))); };
  const Rgb grid{225, 225, 225}, black{0, 0, 0}, grey{150, 150, 150};
  for (int t = 0; t <= 5; ++t) {
    const double v = t / 5.0;
    cv.line(X(v), top, X(v), bottom, grid);
    cv.line(left, Y(v), right, Y(v), grid);
    char lab[8];
    std::snprintf(lab, sizeof lab, t == 0 ? "0" : t == 5 ? "1" : "%.1f", v);
    const int w = static_cast<int>(std::string(lab).size()) * 12;
    cv.text(X(v) - w / 2, bottom + 8, lab, black);
    cv.text(left - w - 8, Y(v) - 7, lab, black);
  }
  cv.line(left, top, right, top, black);
  cv.line(left, bottom, right, bottom, black);
  cv.line(left, top, left, bottom, black);
  cv.line(right, top, right, bottom, black);
  cv.line(X(0), Y(0), X(1), Y(1), grey, 1, 6);
  cv.text((left + right) / 2 - 54, bottom + 32, "FPR 1-SPEC", black);
  cv.text(4, top + 4, "TPR", black);

  // Draw patient_overall last so that it stays on top.
  for (int k : {1, 2, 3, 4, 5, 6, 7, 0}) {
    const auto& pts = r.roc[k];
    for (std::size_t i = 1; i < pts.size(); ++i)
      cv.line(X(pts[i - 1][0]), Y(pts[i - 1][1]), X(pts[i][0]), Y(pts[i][1]), kColors[k], k == 0 ? 3 : 2);
  }
  // Legend, bottom right inside the plot.
  int ly = bottom - 8 - kNumLabels * 20;
  const int lx = right - 250;
  cv.rect(lx - 6, ly - 6, right - 6, bottom - 8, Rgb{255, 255, 255});
  for (int k = 0; k < kNumLabels; ++k) {
    cv.rect(lx, ly + 4, lx + 20, ly + 8, kColors[k]);
    std::string name = k == 0 ? "OVERALL" : kLabelNames[k];
    std::string auc = "-";
    if (k < static_cast<int>(r.labels.size()) && r.labels[k].auc.value) {
      char b[16];
      std::snprintf(b, sizeof b, "%.3f", *r.labels[k].auc.value);
      auc = b;
    }
    cv.text(lx + 28, ly, name + " AUC " + auc, black);
    ly += 20;
  }

  std::vector<uint8_t> rgb;
  rgb.reserve(static_cast<std::size_t>(S) * S * 3);
  for (int y = 0; y < S; ++y)
    for (int x = 0; x < S; ++x) {
      const Rgb& c = cv.at(x, y);
      rgb.insert(rgb.end(), {c.r, c.g, c.b});
    }
  write_rgb_png(path, S, S, rgb);
}

}  // namespace cspine
