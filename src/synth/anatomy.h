// The synthetic neck: bones built from signed-distance parts in each bone's own frame, soft tissue as
// nested cross-sections that follow the spine, and fractures applied to the bones' distance functions.
// Everything here is plain data sampled from a seeded Rng; rendering is in render.h.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "synth/random.h"
#include "synth/shapes.h"

namespace cspine::synth {

enum class PartShape { ellipsoid, capsule, cylinder, shell };

// One primitive of a bone, in the bone's local frame (x left, y posterior, z superior, mm).
struct Part {
  PartShape shape = PartShape::ellipsoid;
  bool subtract = false;  // a hole (foramen, vascular channel) rather than bone
  bool body = false;      // the vertebral body: compression fractures act on it
  double cup_top = 0, cup_bottom = 0;  // body: how far the end plates dip towards the centre, mm
  double lip = 0;                      // body: how far the front of the lower end plate hangs down, mm
  V3 a, b;                // ellipsoid/shell centre in a; capsule ends a, b; cylinder: centre xy in a, z from a.z to b.z
  V3 r;                   // ellipsoid/shell radii; cylinder semi-axes in r.x, r.y and rim rounding in r.z
  double ra = 0, rb = 0;  // capsule radii at a and b; shell thickness in ra
  double blend = 1.0;     // smooth-union width with what came before, mm
  bool clipped = false;   // keep only where dot(p - clip_p, clip_n) >= 0
  V3 clip_p, clip_n;
  V3 bound_c;  // bounding sphere, for skipping far parts
  double bound_r = 0;
};

enum class FractureKind { line, compression, fragment };
const char* fracture_kind_name(FractureKind k);

struct Fracture {
  FractureKind kind = FractureKind::line;
  std::string site;  // "body", "dens", "anterior arch", "lamina", ...
  bool subtle = false;
  V3 p0, n;                // plane through the bone (line, fragment)
  double gap = 0;          // mm between the two sides
  V3 region_c, region_r;   // ellipsoid that bounds the fracture
  V3 shift;                // fragment displacement, mm
  double compression = 0;  // fraction of body height lost
  bool wedge = true;       // anterior wedge (true) or uniform loss
};

struct Material {
  double cortical_hu = 1350, cancellous_hu = 300, cortical_mm = 1.2, texture_hu = 45;
};

struct Spot {  // sclerotic bone island
  V3 c;
  double r = 2, hu = 1100;
};

struct Bone {
  int label = 0;     // 1..7 for C1..C7, 8.. for T1.., 0 for bone that is not a vertebra
  std::string name;  // "C1" ... "T3", "skull base", "mandible", ...
  M3 rot;            // local -> world rotation
  V3 origin;         // world position of the local origin
  std::vector<Part> parts;
  Material mat;
  std::vector<Spot> spots;
  std::vector<Fracture> fractures;
  V3 local_lo, local_hi;  // local bounding box of all parts
  uint64_t texture_seed = 0;
  V3 body_r;  // semi-axes and half height of the body (vertebrae with a body)
  // Where fractures of the posterior elements go, set by the builder (left side, x > 0; mirrored for the right).
  V3 lamina_mid, pedicle_mid, pillar_centre, spinous_base, spinous_tip;

  void finish();  // bounding spheres and box; call after the parts are set
  // Signed distance at a local point, with or without the fractures drawn.
  double distance(V3 p, bool with_fractures) const;
  // HU of bone at local point p that lies `depth` mm inside the surface (before partial volume and noise).
  double bone_hu(V3 p, double depth, double voxel_mm, bool with_fractures) const;
  V3 to_local(V3 world) const { return rot.transposed() * (world - origin); }
  V3 to_world(V3 local) const { return rot * local + origin; }

 private:
  double shape_distance(V3 p, const Fracture* compression) const;
};

// Soft tissue cross-section parameters along the spine.
struct SoftTissue {
  double neck_rx = 60, neck_ry = 55, skin_mm = 2, fat_mm = 8;
  double skin_hu = 40, fat_hu = -100, muscle_hu = 50, csf_hu = 8, cord_hu = 35, thyroid_hu = 100, disc_hu = 90;
  double airway_rx = 9, airway_ry = 7, pharynx_rx = 15, pharynx_ry = 7;
  double shoulder_width = 110;  // extra half-width reached below T1
};

// A point of the spine's track: where the body and canal are at one level, for soft tissue to follow.
struct TrackPoint {
  double z;
  V3 body, canal, airway_dir;  // airway_dir: unit vector from the body towards the front (world)
  double body_rx, body_ry;
};

struct Phantom {
  std::vector<Bone> bones;  // vertebrae first, in label order
  SoftTissue soft;
  std::vector<TrackPoint> track;  // sorted by decreasing z
  double axial_rotation = 0;      // radians, rotates soft tissue with the patient
  double z_c1_top = 0, z_t1_top = 0, z_c6 = 0, z_c3 = 0, z_c2 = 0;
  double noise_sd = 15;
  double edge_blur = 1.0;  // partial-volume width in voxels: how sharp the reconstruction kernel is
  // Coverage of the scan, world z (mm).
  double z_top = 0, z_bottom = 0;
  bool osteoporotic = false;
  int osteophyte_levels = 0, sclerotic_spots = 0;
  bool laryngeal_calcification = false, carotid_calcification = false;
  double table_y = 1e9, table_mm = 10, table_hu = 0;
  double scale = 1.0;
};

struct AnatomyOptions {
  double fracture_rate = 0.5;  // probability that a study has at least one fracture
  double difficulty = 0.5;     // 0 = obvious fractures only, 1 = mostly subtle ones
};

// Samples a whole neck from `rng`. When `fractured`, fractures are drawn from `fracture_rng` (levels and kinds
// with the RSNA 2022 priors). The two streams are separate, so the same seed gives the same neck with or
// without fractures: tests use this to see exactly what a fracture changed.
Phantom make_phantom(Rng& rng, Rng& fracture_rng, const AnatomyOptions& options, bool fractured);

// The soft tissue of one axial plane, prepared once per slice.
struct SoftSlice {
  struct Blob {
    double x, y, rx, ry, hu;  // centre in world x/y, semi-axes in the patient's rotated frame
  };
  double cos_r = 1, sin_r = 0;
  double cx = 0, cy = 0, rx = 1, ry = 1;  // outline centre (world) and semi-axes
  double skin_mm = 2, fat_mm = 8, skin_hu = 40, fat_hu = -100, muscle_hu = 50;
  double table_y = 1e9, table_mm = 10, table_hu = 0;  // scanner table: world y of its top surface
  std::vector<Blob> blobs;                            // drawn in order over the muscle
};
SoftSlice soft_slice(const Phantom& ph, const TrackPoint& at);
// World-space soft tissue HU at (x, y), with partial volume over `pixel_mm`.
double soft_tissue_hu(const SoftSlice& s, double x, double y, double pixel_mm);
// The same for n pixels of one row (x0, x0 + dx, ...), faster: only the structures that reach the row.
void soft_tissue_row(const SoftSlice& s, double y, double x0, double dx, int n, double pixel_mm, float* out);
// The track interpolated at height z.
TrackPoint track_at(const Phantom& ph, double z);

}  // namespace cspine::synth
