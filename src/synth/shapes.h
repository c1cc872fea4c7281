// Small vector maths and signed distance functions (negative inside, in mm) used to model bone and soft
// tissue. Distances need only be exact near the surface: they drive partial-volume edges and the depth of the
// cortical shell.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>

namespace cspine::synth {

struct V3 {
  double x = 0, y = 0, z = 0;
};
inline V3 operator+(V3 a, V3 b) {
  return {a.x + b.x, a.y + b.y, a.z + b.z};
}
inline V3 operator-(V3 a, V3 b) {
  return {a.x - b.x, a.y - b.y, a.z - b.z};
}
inline V3 operator*(V3 a, double s) {
  return {a.x * s, a.y * s, a.z * s};
}
inline V3 operator*(double s, V3 a) {
  return a * s;
}
inline double dot(V3 a, V3 b) {
  return a.x * b.x + a.y * b.y + a.z * b.z;
}
inline double length(V3 a) {
  return std::sqrt(dot(a, a));
}
inline V3 normalized(V3 a) {
  const double l = length(a);
  return l > 0 ? a * (1.0 / l) : V3{0, 0, 1};
}
inline V3 cross(V3 a, V3 b) {
  return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}

// Rotation matrix, row-major.
struct M3 {
  std::array<double, 9> m{1, 0, 0, 0, 1, 0, 0, 0, 1};
  V3 operator*(V3 v) const {
    return {m[0] * v.x + m[1] * v.y + m[2] * v.z, m[3] * v.x + m[4] * v.y + m[5] * v.z,
            m[6] * v.x + m[7] * v.y + m[8] * v.z};
  }
  M3 operator*(const M3& o) const {
    M3 r;
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        double s = 0;
        for (int k = 0; k < 3; ++k)
          s += m[static_cast<std::size_t>(i * 3 + k)] * o.m[static_cast<std::size_t>(k * 3 + j)];
        r.m[static_cast<std::size_t>(i * 3 + j)] = s;
      }
    return r;
  }
  M3 transposed() const { return {{m[0], m[3], m[6], m[1], m[4], m[7], m[2], m[5], m[8]}}; }
  V3 column(int c) const {
    return {m[static_cast<std::size_t>(c)], m[static_cast<std::size_t>(3 + c)], m[static_cast<std::size_t>(6 + c)]};
  }
};
inline M3 rot_x(double a) {
  const double c = std::cos(a), s = std::sin(a);
  return {{1, 0, 0, 0, c, -s, 0, s, c}};
}
inline M3 rot_y(double a) {
  const double c = std::cos(a), s = std::sin(a);
  return {{c, 0, s, 0, 1, 0, -s, 0, c}};
}
inline M3 rot_z(double a) {
  const double c = std::cos(a), s = std::sin(a);
  return {{c, -s, 0, s, c, 0, 0, 0, 1}};
}

// Ellipsoid with radii r centred at the origin (a close approximation, exact on the axes).
inline double sd_ellipsoid(V3 p, V3 r) {
  const V3 q{p.x / r.x, p.y / r.y, p.z / r.z};
  const V3 q2{p.x / (r.x * r.x), p.y / (r.y * r.y), p.z / (r.z * r.z)};
  const double k0 = length(q), k1 = length(q2);
  if (k1 < 1e-12) return -std::min({r.x, r.y, r.z});
  return k0 * (k0 - 1.0) / k1;
}

// 2D ellipse, same approximation.
inline double sd_ellipse(double x, double y, double rx, double ry) {
  const double ax = x / rx, ay = y / ry, bx = ax / rx, by = ay / ry;
  const double k0 = std::sqrt(ax * ax + ay * ay), k1 = std::sqrt(bx * bx + by * by);
  if (k1 < 1e-12) return -std::min(rx, ry);
  return k0 * (k0 - 1.0) / k1;
}

// Capsule from a to b whose radius goes linearly from ra to rb.
inline double sd_capsule(V3 p, V3 a, V3 b, double ra, double rb) {
  const V3 pa = p - a, ba = b - a;
  const double bb = dot(ba, ba);
  const double h = bb > 0 ? std::clamp(dot(pa, ba) / bb, 0.0, 1.0) : 0.0;
  return length(pa - ba * h) - (ra + (rb - ra) * h);
}

// Elliptic cylinder along z with rounded rims: semi-axes rx, ry, from z = bottom to z = top.
inline double sd_elliptic_cylinder(V3 p, double rx, double ry, double bottom, double top, double rounding) {
  const double dxy = sd_ellipse(p.x, p.y, rx - rounding, ry - rounding);
  const double mid = 0.5 * (top + bottom), half = 0.5 * (top - bottom) - rounding;
  const double dz = std::abs(p.z - mid) - half;
  const double ox = std::max(dxy, 0.0), oz = std::max(dz, 0.0);
  return std::sqrt(ox * ox + oz * oz) + std::min(std::max(dxy, dz), 0.0) - rounding;
}

// Polynomial smooth minimum: unions that blend over about k mm, like bone grown together.
inline double smin(double a, double b, double k) {
  if (k <= 0) return std::min(a, b);
  const double h = std::max(k - std::abs(a - b), 0.0) / k;
  return std::min(a, b) - h * h * k * 0.25;
}

// Fraction of a voxel of size h covered by a shape at signed distance d from the voxel centre.
inline double coverage(double d, double h) {
  return std::clamp(0.5 - d / h, 0.0, 1.0);
}

}  // namespace cspine::synth
