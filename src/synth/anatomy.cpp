#include "synth/anatomy.h"

#include <algorithm>
#include <cmath>

namespace cspine::synth {

namespace {
constexpr double kPi = 3.14159265358979323846;
constexpr double kFar = 8.0;  // distances beyond this (mm) only mean "outside": parts farther are skipped
double deg(double d) {
  return d * kPi / 180.0;
}

Part ellipsoid(V3 c, V3 r, double blend = 1.0) {
  Part p;
  p.shape = PartShape::ellipsoid;
  p.a = c;
  p.r = r;
  p.blend = blend;
  return p;
}
Part capsule(V3 a, V3 b, double ra, double rb, double blend = 1.0) {
  Part p;
  p.shape = PartShape::capsule;
  p.a = a;
  p.b = b;
  p.ra = ra;
  p.rb = rb;
  p.blend = blend;
  return p;
}
Part cylinder(V3 centre, double rx, double ry, double bottom, double top, double rounding, double blend = 1.0) {
  Part p;
  p.shape = PartShape::cylinder;
  p.a = {centre.x, centre.y, bottom};
  p.b = {centre.x, centre.y, top};
  p.r = {rx, ry, rounding};
  p.blend = blend;
  return p;
}
Part hole(Part p) {
  p.subtract = true;
  return p;
}
V3 mirror(V3 v, double side) {
  return {v.x * side, v.y, v.z};
}

// A chain of capsules through points: arches, ribs, the mandible.
void chain(std::vector<Part>& parts, const std::vector<V3>& pts, double r0, double r1, double blend = 1.5) {
  for (std::size_t i = 0; i + 1 < pts.size(); ++i) {
    const double t0 = static_cast<double>(i) / static_cast<double>(pts.size() - 1);
    const double t1 = static_cast<double>(i + 1) / static_cast<double>(pts.size() - 1);
    parts.push_back(capsule(pts[i], pts[i + 1], r0 + (r1 - r0) * t0, r0 + (r1 - r0) * t1, blend));
  }
}
std::vector<V3> arc(V3 c, double rx, double ry, double z, double from_deg, double to_deg, int n) {
  std::vector<V3> pts;
  for (int i = 0; i <= n; ++i) {
    const double a = deg(from_deg + (to_deg - from_deg) * i / n);
    pts.push_back({c.x + rx * std::cos(a), c.y + ry * std::sin(a), z});
  }
  return pts;
}

double part_distance(const Part& p, V3 q, const Fracture* compression) {
  double d = 0;
  switch (p.shape) {
    case PartShape::ellipsoid:
      d = sd_ellipsoid(q - p.a, p.r);
      break;
    case PartShape::shell:
      d = std::abs(sd_ellipsoid(q - p.a, p.r)) - 0.5 * p.ra;
      break;
    case PartShape::capsule:
      d = sd_capsule(q, p.a, p.b, p.ra, p.rb);
      break;
    case PartShape::cylinder: {
      const double x = q.x - p.a.x, y = q.y - p.a.y;
      double top = p.b.z, bottom = p.a.z;
      if (p.body) {
        // Concave end plates, deepest in the middle, and the lip at the front of the lower plate.
        const double centre = 1.0 - std::min(1.0, (x * x) / (p.r.x * p.r.x) + (y * y) / (p.r.y * p.r.y));
        const double front = std::clamp(-y / p.r.y, 0.0, 1.0);
        top -= p.cup_top * centre;
        bottom += p.cup_bottom * centre - p.lip * front * front * front;
      }
      if (compression && p.body) {
        // Height lost at the top plate: all of it anteriorly for a wedge, evenly otherwise.
        const double anterior = compression->wedge ? std::clamp((p.r.y - y) / (2 * p.r.y), 0.0, 1.0) : 1.0;
        top -= compression->compression * (p.b.z - p.a.z) * anterior;
      }
      d = sd_elliptic_cylinder({x, y, q.z}, p.r.x, p.r.y, bottom, top, p.r.z);
      break;
    }
  }
  if (p.clipped) d = std::max(d, -dot(q - p.clip_p, p.clip_n));
  return d;
}

// Smooth value noise on a 1.2 mm lattice: the trabecular texture of cancellous bone.
double value_noise(V3 p, uint64_t seed) {
  const double s = 1.0 / 1.2;
  const double fx = p.x * s, fy = p.y * s, fz = p.z * s;
  const double x0 = std::floor(fx), y0 = std::floor(fy), z0 = std::floor(fz);
  const double tx = fx - x0, ty = fy - y0, tz = fz - z0;
  auto smooth = [](double t) { return t * t * (3 - 2 * t); };
  const double sx = smooth(tx), sy = smooth(ty), sz = smooth(tz);
  auto lattice = [&](int dx, int dy, int dz) {
    const auto ix = static_cast<uint64_t>(static_cast<int64_t>(x0) + dx);
    const auto iy = static_cast<uint64_t>(static_cast<int64_t>(y0) + dy);
    const auto iz = static_cast<uint64_t>(static_cast<int64_t>(z0) + dz);
    return to_unit(hash3(seed ^ ix, iy, iz)) * 2.0 - 1.0;
  };
  double v = 0;
  for (int dz = 0; dz < 2; ++dz)
    for (int dy = 0; dy < 2; ++dy)
      for (int dx = 0; dx < 2; ++dx)
        v += lattice(dx, dy, dz) * (dx ? sx : 1 - sx) * (dy ? sy : 1 - sy) * (dz ? sz : 1 - sz);
  return v;
}
}  // namespace

const char* fracture_kind_name(FractureKind k) {
  switch (k) {
    case FractureKind::line:
      return "lucent-line";
    case FractureKind::compression:
      return "compression";
    case FractureKind::fragment:
      return "displaced-fragment";
  }
  return "?";
}

void Bone::finish() {
  local_lo = {1e9, 1e9, 1e9};
  local_hi = {-1e9, -1e9, -1e9};
  for (Part& p : parts) {
    V3 lo, hi;
    switch (p.shape) {
      case PartShape::ellipsoid:
      case PartShape::shell: {
        const double t = p.shape == PartShape::shell ? 0.5 * p.ra : 0.0;
        lo = p.a - V3{p.r.x + t, p.r.y + t, p.r.z + t};
        hi = p.a + V3{p.r.x + t, p.r.y + t, p.r.z + t};
        break;
      }
      case PartShape::capsule: {
        const double r = std::max(p.ra, p.rb);
        lo = {std::min(p.a.x, p.b.x) - r, std::min(p.a.y, p.b.y) - r, std::min(p.a.z, p.b.z) - r};
        hi = {std::max(p.a.x, p.b.x) + r, std::max(p.a.y, p.b.y) + r, std::max(p.a.z, p.b.z) + r};
        break;
      }
      case PartShape::cylinder:
        lo = {p.a.x - p.r.x, p.a.y - p.r.y, p.a.z - p.lip};
        hi = {p.a.x + p.r.x, p.a.y + p.r.y, p.b.z};
        break;
    }
    p.bound_c = (lo + hi) * 0.5;
    p.bound_r = 0.5 * length(hi - lo);
    if (p.subtract) continue;
    local_lo = {std::min(local_lo.x, lo.x), std::min(local_lo.y, lo.y), std::min(local_lo.z, lo.z)};
    local_hi = {std::max(local_hi.x, hi.x), std::max(local_hi.y, hi.y), std::max(local_hi.z, hi.z)};
  }
  // Displaced fragments may leave the bone's box.
  for (const Fracture& f : fractures) {
    const double m = length(f.shift) + 1.0;
    local_lo = local_lo - V3{m, m, m};
    local_hi = local_hi + V3{m, m, m};
  }
}

double Bone::shape_distance(V3 q, const Fracture* compression) const {
  double d = kFar;
  for (const Part& p : parts) {
    if (p.subtract) continue;
    const double reach = d + p.blend + p.bound_r;  // farther parts cannot change d
    const V3 e = q - p.bound_c;
    if (dot(e, e) > reach * reach) continue;
    d = smin(d, part_distance(p, q, compression), p.blend);
  }
  for (const Part& p : parts) {
    if (!p.subtract) continue;
    const double reach = std::max(0.0, -d) + p.bound_r;
    const V3 e = q - p.bound_c;
    if (dot(e, e) > reach * reach) continue;
    d = std::max(d, -part_distance(p, q, nullptr));
  }
  return d;
}

double Bone::distance(V3 q, bool with_fractures) const {
  if (!with_fractures || fractures.empty()) return shape_distance(q, nullptr);
  const Fracture* compression = nullptr;
  for (const Fracture& f : fractures)
    if (f.kind == FractureKind::compression) compression = &f;
  double d = shape_distance(q, compression);
  for (const Fracture& f : fractures) {
    if (f.kind == FractureKind::line) {
      const double slab =
          std::max(std::abs(dot(q - f.p0, f.n)) - 0.5 * f.gap, sd_ellipsoid(q - f.region_c, f.region_r));
      d = std::max(d, -slab);
    } else if (f.kind == FractureKind::fragment) {
      // The fragment is the bone on the far side of the plane within the region; it moves by `shift`.
      const V3 m = q - f.shift;
      const double region_here = sd_ellipsoid(q - f.region_c, f.region_r);
      const double region_moved = sd_ellipsoid(m - f.region_c, f.region_r);
      const double vacated = std::max(-0.5 * f.gap - dot(q - f.p0, f.n), region_here);
      const double fragment = std::max(0.5 * f.gap - dot(m - f.p0, f.n), region_moved);
      const double rest = std::max(d, -vacated);
      const double moved = std::max(shape_distance(m, compression), fragment);
      d = std::min(rest, moved);
    }
  }
  return d;
}

double Bone::bone_hu(V3 p, double depth, double voxel_mm, bool with_fractures) const {
  // Cortical shell over cancellous bone, with a partial-volume transition between them.
  const double f_cortex = std::clamp((mat.cortical_mm - depth) / voxel_mm + 0.5, 0.0, 1.0);
  double cancellous = mat.cancellous_hu + mat.texture_hu * value_noise(p, texture_seed);
  for (const Spot& s : spots) {
    const double d = length(p - s.c) - s.r;
    if (d < voxel_mm) cancellous += (s.hu - cancellous) * coverage(d, voxel_mm);
  }
  if (with_fractures) {
    for (const Fracture& f : fractures) {
      if (f.kind != FractureKind::compression) continue;
      // Impacted trabeculae under the collapsed plate: a dense band a few mm thick.
      const double anterior = f.wedge ? std::clamp((body_r.y - p.y) / (2 * body_r.y), 0.0, 1.0) : 1.0;
      const double top = body_r.z - f.compression * 2 * body_r.z * anterior;
      const double below = top - p.z;
      if (below > -0.5 && below < 3.5 && std::abs(p.x) < body_r.x && std::abs(p.y) < body_r.y)
        cancellous += 260 * (1.0 - std::clamp(below / 3.5, 0.0, 1.0));
    }
  }
  return cancellous + (mat.cortical_hu - cancellous) * f_cortex;
}

namespace {

struct LevelSize {
  const char* name;
  int label;
  double body_rx, body_ry, body_h, disc_below, canal_w, canal_ap, spinous_len, spinous_drop, tp_len;
};
// Adult means in mm (scaled per patient), C2 to T3.
constexpr LevelSize kLevels[] = {
    {"C2", 2, 8.5, 8.0, 17.0, 4.5, 24, 15, 13, 6, 8},      {"C3", 3, 8.0, 7.5, 12.5, 4.5, 23, 14, 12, 5, 9},
    {"C4", 4, 8.5, 7.7, 12.5, 5.0, 24, 14, 12, 5, 9.5},    {"C5", 5, 9.0, 7.9, 12.5, 5.0, 24.5, 14, 13, 6, 10},
    {"C6", 6, 10.0, 8.2, 13.0, 5.0, 24.5, 14, 16, 7, 11},  {"C7", 7, 11.0, 8.5, 14.0, 5.0, 24, 14, 24, 9, 13},
    {"T1", 8, 12.5, 9.5, 16.0, 5.5, 20, 13, 28, 12, 16},   {"T2", 9, 13.5, 10.5, 17.5, 6.0, 17, 13, 30, 16, 17},
    {"T3", 10, 14.5, 11.5, 18.5, 6.0, 16, 13, 30, 18, 17},
};

// C3-T3: body, pedicles, articular pillars, laminae, spinous process, transverse processes.
void build_subaxial(Bone& b, const LevelSize& L, double s, Rng& rng) {
  const double rx = L.body_rx * s * rng.uniform(0.95, 1.05), ry = L.body_ry * s * rng.uniform(0.95, 1.05);
  const double h = L.body_h * s * rng.uniform(0.95, 1.05), cw = L.canal_w * s, ap = L.canal_ap * s;
  const bool thoracic = L.label >= 8;
  b.body_r = {rx, ry, h / 2};
  Part body = cylinder({0, 0, 0}, rx, ry, -h / 2, h / 2, 1.3 * s, 0.0);
  body.body = true;
  body.cup_top = rng.uniform(0.5, 1.0) * s;
  body.cup_bottom = rng.uniform(0.7, 1.3) * s;
  body.lip = thoracic ? 0.0 : rng.uniform(1.0, 2.0) * s;
  b.parts.push_back(body);
  const double pillar_h = (h + L.disc_below * s) / 2 - 0.8;
  for (double side : {-1.0, 1.0}) {
    if (!thoracic)
      b.parts.push_back(ellipsoid(mirror({rx - 1.5 * s, 0.5, h / 2}, side), V3{1.6, 4, 2} * s));  // uncinate
    const V3 pillar = mirror({cw / 2 + 4 * s, ry + 6.5 * s, 0}, side);
    b.parts.push_back(capsule(mirror({rx * 0.55, ry - 1.0, 0.5}, side),
                              mirror({cw / 2 + 1.5 * s, ry + 4.5 * s, 0.5}, side), 2.7 * s, 2.4 * s, 1.5));  // pedicle
    b.parts.push_back(ellipsoid(pillar, {4.8 * s, 6.0 * s, pillar_h}, 1.5));                                 // pillar
    b.parts.push_back(capsule(mirror({cw / 2 + 2.5 * s, ry + 9.5 * s, -1}, side), {0, ry + ap + 2.5 * s, -1.5}, 2.2 * s,
                              2.2 * s, 1.5));  // lamina
    if (thoracic) {
      b.parts.push_back(capsule(pillar, pillar + mirror(V3{L.tp_len, 5, 1} * s, side), 3.6 * s, 3.0 * s, 2.0));
    } else {
      const double tip = rx + L.tp_len * s;
      b.parts.push_back(
          capsule(mirror({rx - 1, -1, -0.5}, side), mirror({tip, 1.5 * s, -1}, side), 2.1 * s, 1.8 * s, 1.2));
      b.parts.push_back(capsule(mirror({cw / 2 + 3 * s, ry + 3.5 * s, -0.5}, side), mirror({tip, 3.0 * s, -1}, side),
                                2.1 * s, 1.8 * s, 1.2));
      b.parts.push_back(hole(cylinder(mirror({rx + 4.2 * s, 2.0 * s, 0}, side), 2.4 * s, 2.4 * s, -6, 6, 0.3)));
    }
  }
  const V3 sp0{0, ry + ap + 2.5 * s, -1.5};
  const V3 sp1 = sp0 + V3{0, L.spinous_len, -L.spinous_drop} * s;
  b.lamina_mid = (V3{cw / 2 + 2.5 * s, ry + 9.5 * s, -1} + sp0) * 0.5;
  b.pedicle_mid = (V3{rx * 0.55, ry - 1.0, 0.5} + V3{cw / 2 + 1.5 * s, ry + 4.5 * s, 0.5}) * 0.5;
  b.pillar_centre = {cw / 2 + 4 * s, ry + 6.5 * s, 0};
  b.spinous_base = sp0;
  b.spinous_tip = sp1;
  b.parts.push_back(capsule(sp0, sp1, 2.8 * s, 2.0 * s, 1.5));
  if (L.label >= 3 && L.label <= 6)  // bifid spinous processes
    for (double side : {-1.0, 1.0})
      b.parts.push_back(capsule(sp1, sp1 + mirror(V3{3, 2.5, -1} * s, side), 1.8 * s, 1.5 * s, 1.0));
  // Basivertebral vein channel: a normal lucency in the back of every body, a classic fracture mimic.
  b.parts.push_back(hole(capsule({0, ry + 0.5, 0.3}, {0, ry - 5.0 * s, 0.3}, 0.8, 0.5)));
}

void build_c2(Bone& b, double s, Rng& rng, double& dens_top) {
  const double rx = 8.5 * s * rng.uniform(0.95, 1.05), ry = 8.0 * s * rng.uniform(0.95, 1.05), h = 17.0 * s;
  b.body_r = {rx, ry, h / 2};
  Part body = cylinder({0, 0, 0}, rx, ry, -h / 2, h / 2, 1.3 * s, 0.0);
  body.body = true;
  body.cup_bottom = rng.uniform(0.7, 1.3) * s;
  body.lip = rng.uniform(1.5, 2.5) * s;  // C2's anterior-inferior lip is prominent
  b.parts.push_back(body);
  dens_top = h / 2 + 15 * s;
  b.parts.push_back(capsule({0, -1.5 * s, h / 2 - 2}, {0, -1.0 * s, dens_top - 4.2 * s}, 5.0 * s, 4.2 * s, 2.5));
  for (double side : {-1.0, 1.0}) {
    b.parts.push_back(ellipsoid(mirror({11.5 * s, 1.5 * s, h / 2 - 2 * s}, side), V3{6, 7.5, 4} * s, 2.0));  // facet
    b.parts.push_back(
        capsule(mirror({7 * s, 6 * s, 2 * s}, side), mirror({12 * s, 15 * s, -3 * s}, side), 3.0 * s, 3.0 * s, 1.5));
    b.parts.push_back(ellipsoid(mirror({13 * s, 16 * s, -4 * s}, side), V3{5, 6, 6} * s, 1.5));  // inferior facet
    b.parts.push_back(capsule(mirror({12 * s, 18 * s, -3 * s}, side), {0, 27 * s, -4 * s}, 3.2 * s, 3.2 * s, 1.5));
    b.parts.push_back(
        capsule(mirror({rx - 1, 3 * s, 0}, side), mirror({17 * s, 5 * s, -1 * s}, side), 2.2 * s, 2.0 * s, 1.2));
    b.parts.push_back(hole(cylinder(mirror({rx + 3.8 * s, 3.5 * s, 0}, side), 2.3 * s, 2.3 * s, -7, 4, 0.3)));
    b.parts.push_back(
        capsule(V3{0, 40, -10} * s, mirror(V3{4, 42, -9} * s, side), 2.6 * s, 2.0 * s, 1.2));  // bifid tip
  }
  b.parts.push_back(capsule(V3{0, 27, -4} * s, V3{0, 40, -10} * s, 4.0 * s, 2.8 * s, 1.5));
  b.lamina_mid = V3{6, 22.5, -3.5} * s;
  b.pedicle_mid = V3{9.5, 10.5, -0.5} * s;
  b.pillar_centre = V3{13, 16, -4} * s;
  b.spinous_base = V3{0, 27, -4} * s;
  b.spinous_tip = V3{0, 40, -10} * s;
  b.parts.push_back(hole(capsule({0, ry + 0.5, 0.3}, {0, ry - 5.0 * s, 0.3}, 0.8, 0.5)));
}

// C1, local origin on the dens axis at mid height of the ring.
void build_c1(Bone& b, double s) {
  const V3 c = V3{0, 10, 0} * s;
  const double ax = 15 * s, ay = 20 * s;
  chain(b.parts, arc(c, ax, ay, 0, 200, 340, 6), 3.0 * s, 3.0 * s);          // anterior arch
  chain(b.parts, arc(c, ax, ay, 0, 20, 160, 6), 2.8 * s, 2.8 * s);           // posterior arch
  b.parts.push_back(ellipsoid({0, c.y - ay, 0}, V3{5, 3.5, 5.5} * s, 1.5));  // anterior tubercle
  b.parts.push_back(ellipsoid({0, c.y + ay + 0.5, 0}, V3{4, 3, 4.5} * s, 1.5));
  for (double side : {-1.0, 1.0}) {
    b.parts.push_back(ellipsoid(mirror(V3{13.5, 5, 0} * s, side), V3{6.5, 8.5, 7} * s, 2.0));  // lateral mass
    b.parts.push_back(capsule(mirror(V3{18, 5, 0} * s, side), mirror(V3{33, 6, -1} * s, side), 3.2 * s, 2.8 * s, 1.5));
    b.parts.push_back(hole(cylinder(mirror(V3{23.5, 5.5, 0} * s, side), 2.8 * s, 2.8 * s, -6, 6, 0.3)));
  }
  b.body_r = {0, 0, 0};
}

void build_skull_base(Bone& b, double s) {
  for (double side : {-1.0, 1.0}) {
    b.parts.push_back(ellipsoid(mirror(V3{13, 4, 12.5} * s, side), V3{6, 9, 4.5} * s, 2.0));  // occipital condyle
    b.parts.push_back(ellipsoid(mirror(V3{45, 8, 20} * s, side), V3{8, 10, 12} * s, 3.0));    // mastoid
  }
  b.parts.push_back(capsule(V3{0, -8, 17} * s, V3{0, -22, 45} * s, 6 * s, 8 * s, 3.0));  // clivus
  Part squama;
  squama.shape = PartShape::shell;
  squama.a = V3{0, 10, 50} * s;
  squama.r = V3{60, 70, 55} * s;
  squama.ra = 7 * s;
  squama.blend = 3.0;
  squama.clipped = true;
  squama.clip_p = V3{0, 2, 0} * s;
  squama.clip_n = {0, 1, 0};  // the back of the skull only
  b.parts.push_back(squama);
  b.parts.push_back(hole(cylinder(V3{0, 12, 0} * s, 15 * s, 18 * s, 0, 40 * s, 1.0)));  // foramen magnum
}

void build_mandible(Bone& b, double s) {
  std::vector<V3> upper, lower;
  for (int i = 0; i <= 10; ++i) {
    const double t = -1.0 + 0.2 * i;
    upper.push_back(V3{46 * t, -72 + 58 * t * t, -4 + 6 * t * t} * s);
    lower.push_back(V3{44 * t, -70 + 56 * t * t, -18 + 10 * t * t} * s);
  }
  chain(b.parts, upper, 4.5 * s, 4.5 * s, 2.0);
  chain(b.parts, lower, 5.0 * s, 5.0 * s, 6.0);
  for (double side : {-1.0, 1.0})
    b.parts.push_back(
        capsule(mirror(V3{46, -14, -6} * s, side), mirror(V3{50, -4, 35} * s, side), 5.0 * s, 4.0 * s, 3.0));
}

void build_hyoid(Bone& b, double s) {
  chain(b.parts, arc(V3{0, -22, 0} * s, 17 * s, 16 * s, 0, 200, 340, 6), 2.0 * s, 2.0 * s);
  b.parts.push_back(ellipsoid(V3{0, -38, 0} * s, V3{6, 2.5, 4} * s, 1.5));
}

// Thyroid cartilage (two plates meeting in front of the airway) and the cricoid ring below it; local origin
// at the centre of the trachea at C5.
void build_larynx(Bone& b, double s, double airway_rx, double airway_ry) {
  for (double z = -4.0; z <= 14.0; z += 2.0)  // capsules 2 mm apart, radius 1.3: one continuous plate
    for (double side : {-1.0, 1.0})
      b.parts.push_back(capsule(V3{0, -(airway_ry + 9 * s), z * s}, mirror(V3{airway_rx + 9 * s, 3 * s, z * s}, side),
                                1.3, 1.3, 1.0));
  chain(b.parts, arc({0, 0, -12 * s}, airway_rx + 3 * s, airway_ry + 3 * s, -12 * s, 0, 360, 12), 1.8, 1.8, 1.0);
}

void build_clavicles(Bone& b, double s) {
  for (double side : {-1.0, 1.0})
    chain(b.parts,
          {mirror(V3{20, -48, -14} * s, side), mirror(V3{55, -42, 0} * s, side), mirror(V3{95, -15, 8} * s, side)},
          7.0 * s, 5.0 * s, 3.0);
}

void build_ribs(Bone& b, const LevelSize& L, double s) {
  const double x0 = (L.canal_w / 2 + 4 + L.tp_len) * s;
  for (double side : {-1.0, 1.0})
    chain(b.parts,
          {mirror({x0 - 3 * s, (L.body_ry + 12) * s, 1}, side), mirror(V3{x0 / s + 18, 16, -6} * s, side),
           mirror(V3{x0 / s + 26, -6, -16} * s, side), mirror(V3{x0 / s + 18, -32, -26} * s, side),
           mirror(V3{x0 / s + 2, -46, -34} * s, side)},
          4.2 * s, 4.0 * s, 2.0);
}

Material sample_material(Rng& rng, bool osteoporotic) {
  Material m;
  if (osteoporotic) {
    m.cortical_hu = rng.uniform(750, 1000);
    m.cancellous_hu = rng.uniform(190, 225);
    m.cortical_mm = rng.uniform(0.6, 0.9);
    m.texture_hu = rng.uniform(15, 25);
  } else {
    m.cortical_hu = rng.uniform(1100, 1700);
    m.cancellous_hu = rng.uniform(240, 360);
    m.cortical_mm = rng.uniform(1.0, 1.6);
    m.texture_hu = rng.uniform(30, 55);
  }
  return m;
}

// --- fractures --------------------------------------------------------------------------------------

// RSNA 2022 training set: share of studies with a fracture at C1..C7.
constexpr double kLevelPrior[7] = {0.072, 0.141, 0.036, 0.053, 0.080, 0.137, 0.195};

V3 random_unit(Rng& rng) {
  V3 v{rng.normal(), rng.normal(), rng.normal()};
  return normalized(v);
}
V3 jitter(V3 n, Rng& rng, double amount) {
  return normalized(n + random_unit(rng) * amount);
}

double gap_mm(Rng& rng, bool subtle) {
  return subtle ? rng.uniform(0.25, 0.6) : rng.uniform(0.8, 2.0);
}

Fracture line_through(const std::string& site, V3 p0, V3 n, V3 region_c, V3 region_r, bool subtle, Rng& rng) {
  Fracture f;
  f.kind = FractureKind::line;
  f.site = site;
  f.subtle = subtle;
  f.p0 = p0;
  f.n = normalized(n);
  f.gap = gap_mm(rng, subtle);
  f.region_c = region_c;
  f.region_r = region_r;
  return f;
}

void add_fracture(Bone& b, Rng& rng, double difficulty, double s) {
  const bool subtle = rng.chance(0.15 + 0.7 * difficulty);
  const V3 r = b.body_r;
  if (b.label == 1) {  // C1: breaks of the ring (Jefferson-type when both arches go)
    const int breaks = subtle ? 1 : rng.integer(1, 2);
    for (int i = 0; i < breaks; ++i) {
      const bool anterior =
          (i == 0) ? rng.chance(0.5) : !b.fractures.empty() && b.fractures.back().site == "posterior arch";
      const double a = deg(anterior ? rng.uniform(215, 325) : rng.uniform(35, 145));
      const V3 c = V3{15 * std::cos(a), 10 + 20 * std::sin(a), 0} * s;
      const V3 tangent{-15 * std::sin(a), 20 * std::cos(a), 0};
      b.fractures.push_back(line_through(anterior ? "anterior arch" : "posterior arch", c,
                                         jitter(normalized(tangent), rng, 0.3), c, V3{6, 6, 8} * s, subtle, rng));
    }
    return;
  }
  if (b.label == 2) {
    const double u = rng.uniform();
    if (u < 0.45) {  // odontoid (type II): through the base of the dens
      const V3 c{0, -1.5 * s, r.z + rng.uniform(-1.0, 2.0) * s};
      if (!subtle && rng.chance(0.5)) {
        Fracture f = line_through("dens", c, jitter({0, 0, 1}, rng, 0.25), c, V3{7, 7, 5} * s, subtle, rng);
        f.kind = FractureKind::fragment;
        f.region_c = c + V3{0, 0, 12 * s};
        f.region_r = V3{8, 8, 13} * s;
        f.shift = V3{rng.uniform(-1, 1), rng.uniform(-2.5, 2.5), rng.uniform(0, 1)} * (subtle ? 0.4 : 1.0);
        b.fractures.push_back(f);
      } else {
        b.fractures.push_back(line_through("dens", c, jitter({0, 0, 1}, rng, 0.25), c, V3{7, 7, 5} * s, subtle, rng));
      }
      return;
    }
    if (u < 0.75) {  // hangman's: through both pars interarticularis
      for (double side : {-1.0, 1.0}) {
        const V3 c = mirror(V3{10, 11, -0.5} * s, side);
        b.fractures.push_back(
            line_through("pars", c, jitter(mirror({0.6, 1, -0.5}, side), rng, 0.3), c, V3{5, 5, 6} * s, subtle, rng));
        if (subtle) break;
      }
      return;
    }
  }
  const double u = rng.uniform();
  const bool thoracic_or_c7 = b.label >= 7;
  if (u < 0.35) {  // a line through the body
    const V3 n = rng.pick<V3>({{1, 0, 0}, {0, 1, 0}, {0.3, 0.3, 1}, {1, 1, 0.2}, {0, 0.4, 1}});
    const V3 c{rng.uniform(-0.4, 0.4) * r.x, rng.uniform(-0.4, 0.4) * r.y, rng.uniform(-0.3, 0.3) * r.z};
    b.fractures.push_back(
        line_through("body", c, jitter(n, rng, 0.3), {0, 0, 0}, V3{r.x + 1.5, r.y + 1.5, r.z + 1.5}, subtle, rng));
  } else if (u < 0.55) {  // compression of the body
    Fracture f;
    f.kind = FractureKind::compression;
    f.site = "body";
    f.subtle = subtle;
    f.compression = subtle ? rng.uniform(0.12, 0.2) : rng.uniform(0.25, 0.45);
    f.wedge = rng.chance(0.7);
    f.region_c = {0, 0, 0};
    f.region_r = V3{r.x + 1.5, r.y + 1.5, r.z + 1.5};
    b.fractures.push_back(f);
  } else if (u < 0.7) {  // teardrop: the antero-inferior corner breaks off
    Fracture f;
    f.kind = FractureKind::fragment;
    f.site = "body (antero-inferior corner)";
    f.subtle = subtle;
    f.p0 = {0, -0.35 * r.y, -0.35 * r.z};
    f.n = normalized(jitter({0, -1, -1.2}, rng, 0.2));
    f.gap = gap_mm(rng, subtle);
    f.region_c = {0, -r.y, -r.z};
    f.region_r = V3{r.x + 1.5, r.y * 0.9, r.z * 0.9};
    const double m = subtle ? rng.uniform(0.4, 1.0) : rng.uniform(1.5, 3.5);
    f.shift = normalized(V3{rng.uniform(-0.2, 0.2), -1, -0.6}) * m;
    b.fractures.push_back(f);
  } else if (u < 0.85 || !thoracic_or_c7) {  // posterior arch: lamina, pedicle or pillar
    const double side = rng.chance(0.5) ? 1.0 : -1.0;
    const int which = rng.integer(0, 2);
    V3 c, n;
    std::string site;
    if (which == 0) {  // across the lamina
      site = "lamina";
      c = mirror(b.lamina_mid, side);
      n = normalized(mirror(b.lamina_mid - b.spinous_base, side));
    } else if (which == 1) {  // across the pedicle
      site = "pedicle";
      c = mirror(b.pedicle_mid, side);
      n = mirror({0.5, 1, 0}, side);
    } else {  // through the articular pillar, roughly horizontal
      site = "articular pillar";
      c = mirror(b.pillar_centre, side);
      n = {0.1, 0.3, 1};
    }
    b.fractures.push_back(line_through(site, c, jitter(n, rng, 0.3), c, V3{6, 6, 7} * s, subtle, rng));
  } else {  // spinous process (clay-shoveler's), tip displaced
    Fracture f;
    f.kind = FractureKind::fragment;
    f.site = "spinous process";
    f.subtle = subtle;
    const V3 a = b.spinous_base, e = b.spinous_tip;
    f.p0 = a + (e - a) * rng.uniform(0.4, 0.6);
    f.n = normalized(jitter(e - a, rng, 0.3));
    f.gap = gap_mm(rng, subtle);
    f.region_c = f.p0;
    f.region_r = V3{8, 20, 12} * s;
    f.shift = V3{rng.uniform(-1, 1), rng.uniform(0.5, 2.5), -rng.uniform(1, 3)} * (subtle ? 0.3 : 1.0);
    b.fractures.push_back(f);
  }
}

std::vector<int> sample_fractured_levels(Rng& rng) {
  double total = 0;
  for (double p : kLevelPrior) total += p;
  auto draw = [&]() {
    double u = rng.uniform() * total;
    for (int i = 0; i < 7; ++i) {
      if (u < kLevelPrior[i]) return i + 1;
      u -= kLevelPrior[i];
    }
    return 7;
  };
  std::vector<int> levels{draw()};
  // Adjacent levels are often injured together; some patients have a second, separate injury.
  while (rng.chance(0.3) && levels.size() < 4) {
    const int from = levels[rng.next() % levels.size()];
    const int next = from + (rng.chance(0.5) ? 1 : -1);
    if (next >= 1 && next <= 7 && std::find(levels.begin(), levels.end(), next) == levels.end()) levels.push_back(next);
  }
  if (rng.chance(0.12)) {
    const int other = draw();
    if (std::find(levels.begin(), levels.end(), other) == levels.end()) levels.push_back(other);
  }
  std::sort(levels.begin(), levels.end());
  return levels;
}

}  // namespace

Phantom make_phantom(Rng& rng, Rng& fracture_rng, const AnatomyOptions& options, bool fractured) {
  Phantom ph;
  const double s = rng.uniform(0.88, 1.12);
  ph.scale = s;
  ph.osteoporotic = rng.chance(0.15);
  const Material base = sample_material(rng, ph.osteoporotic);
  auto material = [&]() {
    Material m = base;
    m.cortical_hu *= rng.uniform(0.95, 1.05);
    m.cancellous_hu *= rng.uniform(0.95, 1.05);
    return m;
  };

  // The spine's track in the sagittal plane: from C2 downwards the tangent turns from pointing forwards to
  // pointing backwards (cervical lordosis, straight in some necks), then the thoracic kyphosis begins.
  const double lordosis = deg(rng.uniform(-2, 24));
  const double end_angle = deg(rng.uniform(8, 22));
  const double cervical_len = 95 * s;
  const double kappa = (lordosis + end_angle) / cervical_len;
  auto angle_at = [&](double arc) {
    return -lordosis + kappa * std::min(arc, cervical_len) + (arc > cervical_len ? 0.002 * (arc - cervical_len) : 0);
  };

  // Global pose: flexion/extension, lateral tilt, axial rotation, position in the scanner.
  const double flex = deg(rng.uniform(-8, 8)), tilt = deg(rng.uniform(-5, 5)), twist = deg(rng.uniform(-10, 10));
  ph.axial_rotation = twist;
  const M3 global = rot_z(twist) * rot_y(tilt) * rot_x(flex);
  const V3 place{rng.uniform(-8, 8), rng.uniform(-10, 10), rng.uniform(-180, 40)};

  // Walk down the spine placing C2..T3 (vertebra centre at the middle of its body).
  struct Placed {
    V3 pos;
    double angle;
  };
  std::vector<Placed> placed;
  V3 pos{0, 0, 0};
  double arc = 0;
  double prev_half = 0, prev_disc = 0;
  for (std::size_t i = 0; i < std::size(kLevels); ++i) {
    const LevelSize& L = kLevels[i];
    const double step = (i == 0) ? 0 : prev_half + prev_disc * s + L.body_h * s / 2;
    // Integrate the tangent over the step in small pieces.
    for (double done = 0; done < step - 1e-9;) {
      const double ds = std::min(1.0, step - done);
      const double a = angle_at(arc + ds / 2);
      pos = pos + V3{0, std::sin(a), -std::cos(a)} * ds;
      arc += ds;
      done += ds;
    }
    placed.push_back({pos, angle_at(arc)});
    prev_half = L.body_h * s / 2;
    prev_disc = L.disc_below * rng.uniform(0.85, 1.15);
  }
  // Pivot the global pose about C4 so the neck stays in the field of view.
  const V3 pivot = placed[2].pos;
  auto frame = [&](Bone& b, V3 local_pos, double angle) {
    b.rot = global * rot_x(angle);
    b.origin = global * (local_pos - pivot) + place;
  };

  // C1 first (label 1), then C2..T3.
  ph.bones.resize(1);
  double dens_top = 0;
  Bone c2;
  c2.label = 2;
  c2.name = "C2";
  build_c2(c2, s, rng, dens_top);
  frame(c2, placed[0].pos, placed[0].angle);
  {
    Bone& c1 = ph.bones[0];
    c1.label = 1;
    c1.name = "C1";
    build_c1(c1, s);
    c1.rot = c2.rot;
    c1.origin = c2.to_world(V3{0, -1.0 * s, 8.5 * s + 10 * s});
  }
  ph.bones.push_back(std::move(c2));
  for (std::size_t i = 1; i < std::size(kLevels); ++i) {
    Bone b;
    b.label = kLevels[i].label;
    b.name = kLevels[i].name;
    build_subaxial(b, kLevels[i], s, rng);
    frame(b, placed[i].pos, placed[i].angle);
    ph.bones.push_back(std::move(b));
  }
  for (Bone& b : ph.bones) {
    b.mat = material();
    b.texture_seed = rng.next();
  }

  // Confounders: osteophytes at the anterior rims, sclerotic bone islands.
  if (rng.chance(0.3)) {
    ph.osteophyte_levels = rng.integer(1, 4);
    for (int k = 0; k < ph.osteophyte_levels; ++k) {
      Bone& b = ph.bones[static_cast<std::size_t>(rng.integer(3, 6))];  // C4..C7
      const V3 r = b.body_r;
      const double zs = rng.chance(0.5) ? 1.0 : -1.0;
      const V3 base_pt{rng.uniform(-0.4, 0.4) * r.x, -r.y + 0.8, zs * (r.z - 0.5)};
      b.parts.push_back(
          capsule(base_pt, base_pt + V3{0, -rng.uniform(2, 5), zs * rng.uniform(1.5, 3.5)}, 2.0, 0.8, 1.5));
    }
  }
  if (rng.chance(0.25)) {
    ph.sclerotic_spots = rng.integer(1, 3);
    for (int k = 0; k < ph.sclerotic_spots; ++k) {
      Bone& b = ph.bones[static_cast<std::size_t>(rng.integer(1, 8))];
      const V3 r = b.body_r;
      b.spots.push_back({{rng.uniform(-0.5, 0.5) * r.x, rng.uniform(-0.5, 0.5) * r.y, rng.uniform(-0.5, 0.5) * r.z},
                         rng.uniform(1.5, 4.0),
                         rng.uniform(900, 1400)});
    }
  }
  for (Bone& b : ph.bones) b.finish();

  // Fractures with the competition's priors.
  if (fractured)
    for (int level : sample_fractured_levels(fracture_rng)) {
      Bone& b = ph.bones[static_cast<std::size_t>(level - 1)];
      add_fracture(b, fracture_rng, options.difficulty, s);
      b.finish();
    }

  // Track for the soft tissue: C1 (canal centre), then the body centres.
  for (std::size_t i = 0; i < 10; ++i) {
    const Bone& b = ph.bones[i];
    TrackPoint t;
    const double ry = i == 0 ? 8.0 * s : b.body_r.y;
    t.body = i == 0 ? b.to_world({0, -2 * s, 0}) : b.origin;
    t.canal = b.to_world({0, i == 0 ? 18 * s : b.body_r.y + 7.5 * s, 0});
    t.airway_dir = normalized(b.rot * V3{0, -1, 0});
    t.z = t.body.z;
    t.body_ry = ry;
    t.body_rx = i == 0 ? 8.0 * s : b.body_r.x;
    ph.track.push_back(t);
  }
  std::sort(ph.track.begin(), ph.track.end(), [](const TrackPoint& a, const TrackPoint& b) { return a.z > b.z; });
  ph.z_c1_top = ph.bones[0].origin.z + 7 * s;
  ph.z_c3 = ph.bones[2].origin.z;
  ph.z_c2 = ph.bones[1].origin.z;
  ph.z_c6 = ph.bones[5].origin.z;
  ph.z_t1_top = ph.bones[7].origin.z + ph.bones[7].body_r.z;

  // Soft tissue.
  SoftTissue& st = ph.soft;
  st.neck_rx = rng.uniform(52, 68) * s;
  st.neck_ry = rng.uniform(48, 60) * s;
  st.skin_mm = rng.uniform(1.5, 2.5);
  st.fat_mm = rng.uniform(3, 15);
  st.skin_hu = rng.uniform(25, 55);
  st.fat_hu = rng.uniform(-115, -85);
  st.muscle_hu = rng.uniform(40, 60);
  st.csf_hu = rng.uniform(2, 14);
  st.cord_hu = rng.uniform(28, 40);
  st.thyroid_hu = rng.uniform(85, 120);
  st.disc_hu = rng.uniform(75, 105);
  st.airway_rx = rng.uniform(7, 11) * s;
  st.airway_ry = rng.uniform(5.5, 8.5) * s;
  st.pharynx_rx = rng.uniform(12, 18) * s;
  st.pharynx_ry = rng.uniform(4, 9) * s;
  st.shoulder_width = rng.uniform(90, 130) * s;
  ph.noise_sd = rng.uniform(8, 22);
  ph.edge_blur = rng.uniform(1.0, 1.8);  // sharp to soft reconstruction kernels

  // Bone that is not a vertebra: skull base, mandible, hyoid, clavicles, first ribs.
  auto extra = [&](const char* name, const Bone& attach, auto&& build) {
    Bone b;
    b.name = name;
    b.rot = attach.rot;
    b.origin = attach.origin;
    build(b);
    b.mat = material();
    b.mat.cortical_hu *= 1.1;
    b.texture_seed = rng.next();
    b.finish();
    ph.bones.push_back(std::move(b));
  };
  const Bone c1 = ph.bones[0], c2b = ph.bones[1], c3 = ph.bones[2], t1 = ph.bones[7], t2 = ph.bones[8];
  extra("skull base", c1, [&](Bone& b) { build_skull_base(b, s); });
  const double jaw = rng.uniform(-6, 10);
  extra("mandible", c2b, [&](Bone& b) {
    build_mandible(b, s);
    b.origin = b.origin + V3{0, 0, jaw};
  });
  extra("hyoid", c3, [&](Bone& b) { build_hyoid(b, s); });
  extra("clavicles", t1, [&](Bone& b) { build_clavicles(b, s); });
  extra("first ribs", t1, [&](Bone& b) { build_ribs(b, kLevels[6], s); });
  extra("second ribs", t2, [&](Bone& b) { build_ribs(b, kLevels[7], s); });

  // Calcified laryngeal cartilage and carotid plaque: dense things near the spine that are not bone of it.
  const TrackPoint c5 = track_at(ph, ph.bones[4].origin.z);
  const V3 trachea = c5.body + c5.airway_dir * (c5.body_ry + 2 + 12 + st.airway_ry);
  Bone neck_frame;
  neck_frame.rot = rot_z(ph.axial_rotation);
  neck_frame.origin = trachea;
  if (rng.chance(0.5)) {
    const double calcified = rng.uniform(250, 650);
    extra("laryngeal cartilage", neck_frame, [&](Bone& b) { build_larynx(b, s, st.airway_rx, st.airway_ry); });
    ph.bones.back().mat = {calcified, calcified * 0.45, 1.2, 60};
    ph.laryngeal_calcification = true;
  }
  if (rng.chance(0.2)) {
    extra("carotid calcification", neck_frame, [&](Bone& b) {
      const int n = rng.integer(1, 3);
      for (int i = 0; i < n; ++i) {
        const double side = rng.chance(0.5) ? 1.0 : -1.0;
        b.parts.push_back(ellipsoid(V3{side * rng.uniform(20, 26), rng.uniform(4, 10), rng.uniform(5, 25)} * s,
                                    V3{rng.uniform(0.8, 1.8), rng.uniform(0.8, 1.8), rng.uniform(1.5, 4)}, 0.5));
      }
    });
    ph.bones.back().mat = {rng.uniform(500, 900), rng.uniform(300, 500), 1.0, 30};
    ph.carotid_calcification = true;
  }
  // The scanner table behind the patient: fixed to the scanner, not to the neck.
  ph.table_y = ph.bones[3].origin.y + st.neck_ry + rng.uniform(15, 40);
  ph.table_mm = rng.uniform(8, 16);
  ph.table_hu = rng.uniform(-250, 150);

  // Scan coverage: from the skull base to the upper thoracic spine.
  ph.z_top = ph.z_c1_top + rng.uniform(8, 25);
  ph.z_bottom = ph.bones[8].origin.z - rng.uniform(-4, 12);
  return ph;
}

TrackPoint track_at(const Phantom& ph, double z) {
  const auto& t = ph.track;
  if (z >= t.front().z) return t.front();
  if (z <= t.back().z) {
    TrackPoint p = t.back();
    p.z = z;
    return p;
  }
  for (std::size_t i = 0; i + 1 < t.size(); ++i)
    if (z <= t[i].z && z >= t[i + 1].z) {
      const double w = (t[i].z - z) / (t[i].z - t[i + 1].z);
      TrackPoint p;
      p.z = z;
      p.body = t[i].body * (1 - w) + t[i + 1].body * w;
      p.canal = t[i].canal * (1 - w) + t[i + 1].canal * w;
      p.airway_dir = normalized(t[i].airway_dir * (1 - w) + t[i + 1].airway_dir * w);
      p.body_ry = t[i].body_ry * (1 - w) + t[i + 1].body_ry * w;
      p.body_rx = t[i].body_rx * (1 - w) + t[i + 1].body_rx * w;
      return p;
    }
  return t.back();
}

SoftSlice soft_slice(const Phantom& ph, const TrackPoint& at) {
  const SoftTissue& st = ph.soft;
  SoftSlice s;
  s.cos_r = std::cos(ph.axial_rotation);
  s.sin_r = std::sin(ph.axial_rotation);
  s.skin_mm = st.skin_mm;
  s.fat_mm = st.fat_mm;
  s.skin_hu = st.skin_hu;
  s.fat_hu = st.fat_hu;
  s.muscle_hu = st.muscle_hu;
  s.table_y = ph.table_y;
  s.table_mm = ph.table_mm;
  s.table_hu = ph.table_hu;
  const double z = at.z;
  // Outline: the neck, widening into the head above C1 and into the shoulders below T1.
  double rx = st.neck_rx, ry = st.neck_ry, shift = -10;
  const double head = std::clamp((z - ph.z_c1_top + 5) / 30.0, 0.0, 1.0);
  rx += 15 * head;
  ry += 25 * head;
  shift -= 12 * head;
  const double shoulders = std::clamp((ph.z_t1_top + 15 - z) / 45.0, 0.0, 1.0);
  rx += st.shoulder_width * shoulders * shoulders;
  ry += 25 * shoulders;
  shift += 8 * shoulders;
  // `shift` is along the patient's back-front axis (v), rotated into world x/y.
  s.cx = at.body.x - s.sin_r * shift;
  s.cy = at.body.y + s.cos_r * shift;
  s.rx = rx;
  s.ry = ry;

  // Structures in front of the spine, placed along the direction the body faces.
  const V3 front = at.airway_dir;
  auto blob = [&](double forward, double lateral, double erx, double ery, double value) {
    s.blobs.push_back({at.body.x + front.x * forward + lateral * s.cos_r,
                       at.body.y + front.y * forward + lateral * s.sin_r, erx, ery, value});
  };
  const double body_front = at.body_ry + 2;
  // Intervertebral discs: tissue the size of the bodies, seen wherever the bodies are not.
  if (z < ph.z_c2) s.blobs.push_back({at.body.x, at.body.y, at.body_rx * 0.97, at.body_ry * 0.97, st.disc_hu});
  blob(body_front + 18, 26, 6, 5, st.fat_hu);  // parapharyngeal fat
  blob(body_front + 18, -26, 6, 5, st.fat_hu);
  // Fat planes between the neck muscles: behind the spine in the midline and between the paraspinal
  // muscles, and around each sternocleidomastoid, which lies in front and to the side.
  blob(-(at.body_ry + 38), 0, 2.0, 16, st.fat_hu);
  blob(-(at.body_ry + 30), 17, 1.8, 14, st.fat_hu);
  blob(-(at.body_ry + 30), -17, 1.8, 14, st.fat_hu);
  for (double side : {-1.0, 1.0}) {
    blob(body_front + 6, side * (st.neck_rx - 16), 10.5, 15, st.fat_hu);
    blob(body_front + 6, side * (st.neck_rx - 16), 8.5, 13, st.muscle_hu + 6);
  }
  if (z < ph.z_c6 + 8 && z > ph.z_t1_top - 25) {  // thyroid lobes beside the trachea
    blob(body_front + 14 + st.airway_ry, 14 + st.airway_rx * 0.5, 7, 10, st.thyroid_hu);
    blob(body_front + 14 + st.airway_ry, -14 - st.airway_rx * 0.5, 7, 10, st.thyroid_hu);
  }
  if (z < ph.z_c6) blob(body_front + 4, -3, 6, 3.5, 25);  // oesophagus
  if (z > ph.z_c3)
    blob(body_front + 4 + st.pharynx_ry, 0, st.pharynx_rx, st.pharynx_ry, -1000);
  else
    blob(body_front + 12 + st.airway_ry, 0, st.airway_rx, st.airway_ry, -1000);
  // Spinal canal: CSF around the cord.
  s.blobs.push_back({at.canal.x, at.canal.y, 9.5 * ph.scale, 6.5 * ph.scale, st.csf_hu});
  s.blobs.push_back({at.canal.x, at.canal.y, 5.5 * ph.scale, 4.0 * ph.scale, st.cord_hu});
  return s;
}

namespace {
// HU at (x, y) given the blobs that can reach this row.
double soft_hu_at(const SoftSlice& s, double x, double y, double h, const SoftSlice::Blob* const* blobs, std::size_t n) {
  // A frame that turns with the patient: u to the patient's left, v backwards.
  auto local = [&](double cx, double cy, double& u, double& v) {
    const double dx = x - cx, dy = y - cy;
    u = s.cos_r * dx + s.sin_r * dy;
    v = -s.sin_r * dx + s.cos_r * dy;
  };
  double u, v;
  local(s.cx, s.cy, u, v);
  // Cheap test first: most pixels are plainly outside.
  const double q = (u * u) / (s.rx * s.rx) + (v * v) / (s.ry * s.ry);
  const double margin = 1.0 + (h + 1.0) / std::min(s.rx, s.ry);
  if (q > margin * margin) {
    if (y < s.table_y - h || y > s.table_y + s.table_mm + h) return -1000.0;
    const double d_table = std::abs(y - (s.table_y + 0.5 * s.table_mm)) - 0.5 * s.table_mm;
    return -1000.0 + (s.table_hu + 1000.0) * coverage(d_table, h);
  }
  // Deep inside the fat layer: muscle, unless a blob is near.
  const double inner_rx = s.rx - s.skin_mm - s.fat_mm - h - 1, inner_ry = s.ry - s.skin_mm - s.fat_mm - h - 1;
  double hu = s.muscle_hu, inside = 1.0;  // inside: how much of the pixel is under the skin
  if (inner_rx <= 0 || inner_ry <= 0 || (u * u) / (inner_rx * inner_rx) + (v * v) / (inner_ry * inner_ry) >= 1.0) {
    const double d_out = sd_ellipse(u, v, s.rx, s.ry);
    inside = coverage(d_out + s.skin_mm, h);
    hu = -1000.0 + (s.skin_hu + 1000.0) * coverage(d_out, h);
    hu += (s.fat_hu - hu) * coverage(d_out + s.skin_mm, h);
    hu += (s.muscle_hu - hu) * coverage(d_out + s.skin_mm + s.fat_mm, h);
  }
  for (std::size_t i = 0; i < n; ++i) {
    const SoftSlice::Blob& b = *blobs[i];
    const double reach = std::max(b.rx, b.ry) + h + 1;
    if (std::abs(x - b.x) > reach) continue;
    double eu, ev;
    local(b.x, b.y, eu, ev);
    hu += (b.hu - hu) * coverage(sd_ellipse(eu, ev, b.rx, b.ry), h) * inside;
  }
  return hu;
}
}  // namespace

double soft_tissue_hu(const SoftSlice& s, double x, double y, double h) {
  std::vector<const SoftSlice::Blob*> blobs;
  for (const auto& b : s.blobs) blobs.push_back(&b);
  return soft_hu_at(s, x, y, h, blobs.data(), blobs.size());
}

void soft_tissue_row(const SoftSlice& s, double y, double x0, double dx, int n, double h, float* out) {
  // The same arithmetic as soft_tissue_hu, pixel by pixel, but each structure only visits the pixels it can
  // reach: the outline first, then the blobs in drawing order.
  const double margin = 1.0 + (h + 1.0) / std::min(s.rx, s.ry);
  const double inner_rx = s.rx - s.skin_mm - s.fat_mm - h - 1, inner_ry = s.ry - s.skin_mm - s.fat_mm - h - 1;
  thread_local std::vector<double> hu, inside;
  hu.assign(static_cast<std::size_t>(n), 0.0);
  inside.assign(static_cast<std::size_t>(n), -1.0);  // -1: outside the body, no blob applies
  const double dy = y - s.cy;
  for (int i = 0; i < n; ++i) {
    const double px = x0 + i * dx, ddx = px - s.cx;
    const double u = s.cos_r * ddx + s.sin_r * dy, v = -s.sin_r * ddx + s.cos_r * dy;
    const double q = (u * u) / (s.rx * s.rx) + (v * v) / (s.ry * s.ry);
    const auto k = static_cast<std::size_t>(i);
    if (q > margin * margin) {
      if (y < s.table_y - h || y > s.table_y + s.table_mm + h) {
        hu[k] = -1000.0;
      } else {
        const double d_table = std::abs(y - (s.table_y + 0.5 * s.table_mm)) - 0.5 * s.table_mm;
        hu[k] = -1000.0 + (s.table_hu + 1000.0) * coverage(d_table, h);
      }
      continue;
    }
    hu[k] = s.muscle_hu;
    inside[k] = 1.0;
    if (inner_rx <= 0 || inner_ry <= 0 || (u * u) / (inner_rx * inner_rx) + (v * v) / (inner_ry * inner_ry) >= 1.0) {
      const double d_out = sd_ellipse(u, v, s.rx, s.ry);
      inside[k] = coverage(d_out + s.skin_mm, h);
      hu[k] = -1000.0 + (s.skin_hu + 1000.0) * coverage(d_out, h);
      hu[k] += (s.fat_hu - hu[k]) * coverage(d_out + s.skin_mm, h);
      hu[k] += (s.muscle_hu - hu[k]) * coverage(d_out + s.skin_mm + s.fat_mm, h);
    }
  }
  for (const SoftSlice::Blob& b : s.blobs) {
    const double reach = std::max(b.rx, b.ry) + h + 1;
    if (std::abs(y - b.y) > reach) continue;
    const int i0 = std::max(0, static_cast<int>(std::floor((b.x - reach - x0) / dx)));
    const int i1 = std::min(n - 1, static_cast<int>(std::ceil((b.x + reach - x0) / dx)));
    const double bdy = y - b.y;
    for (int i = i0; i <= i1; ++i) {
      const auto k = static_cast<std::size_t>(i);
      const double px = x0 + i * dx;
      if (inside[k] < 0 || std::abs(px - b.x) > reach) continue;
      const double bdx = px - b.x;
      const double eu = s.cos_r * bdx + s.sin_r * bdy, ev = -s.sin_r * bdx + s.cos_r * bdy;
      hu[k] += (b.hu - hu[k]) * coverage(sd_ellipse(eu, ev, b.rx, b.ry), h) * inside[k];
    }
  }
  for (int i = 0; i < n; ++i) out[i] = static_cast<float>(hu[static_cast<std::size_t>(i)]);
}

}  // namespace cspine::synth
