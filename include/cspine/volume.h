// A CT volume in Hounsfield units with its patient-space geometry (DICOM LPS, millimetres).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cspine {

// An allocator that leaves new elements uninitialised: a 300 MB volume is about to be overwritten by the
// decoder, so zero-filling it first would only cost time and page faults.
template <typename T>
struct DefaultInitAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  DefaultInitAllocator() = default;
  template <typename U>
  DefaultInitAllocator(const DefaultInitAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

using HuBuffer = std::vector<int16_t, DefaultInitAllocator<int16_t>>;

// Voxel (i, j, k): i runs along a row (column index), j down the columns (row index), k along the slice
// normal, slices sorted by increasing position along it. Voxel centre in LPS:
//   origin + i*spacing[0]*axis(0) + j*spacing[1]*axis(1) + k*spacing[2]*axis(2)
// where axis(0) is the row direction cosine, axis(1) the column direction cosine and axis(2) their
// cross product. `slice_positions` keeps each slice's true offset along axis(2) from the origin, so uneven
// series still report exact z values.
struct Volume {
  std::array<int, 3> size{0, 0, 0};              // columns, rows, slices
  std::array<double, 3> spacing{1.0, 1.0, 1.0};  // mm: column step, row step, slice step (median)
  std::array<double, 3> origin{0.0, 0.0, 0.0};   // LPS position of voxel (0,0,0)
  std::array<double, 9> direction{1, 0, 0, 0, 1, 0, 0, 0, 1};  // row-major 3x3; column c = axis(c)
  HuBuffer hu;                                   // size[0]*size[1]*size[2] values, i fastest
  std::vector<double> slice_positions;           // mm along axis(2) relative to the first slice

  std::size_t voxel_count() const {
    return static_cast<std::size_t>(size[0]) * static_cast<std::size_t>(size[1]) *
           static_cast<std::size_t>(size[2]);
  }
  std::size_t slice_voxels() const {
    return static_cast<std::size_t>(size[0]) * static_cast<std::size_t>(size[1]);
  }
  int16_t at(int i, int j, int k) const {
    return hu[static_cast<std::size_t>(k) * slice_voxels() + static_cast<std::size_t>(j) * size[0] + i];
  }
  int16_t* slice(int k) { return hu.data() + static_cast<std::size_t>(k) * slice_voxels(); }
  const int16_t* slice(int k) const { return hu.data() + static_cast<std::size_t>(k) * slice_voxels(); }
  std::array<double, 3> axis(int c) const { return {direction[c], direction[3 + c], direction[6 + c]}; }
  // LPS position of the centre of voxel (i, j, k), using the true slice position when known.
  std::array<double, 3> voxel_to_lps(double i, double j, double k) const;
  // The same grid without its voxel values (what a writer needs to place a label map).
  Volume geometry() const {
    Volume g;
    g.size = size;
    g.spacing = spacing;
    g.origin = origin;
    g.direction = direction;
    g.slice_positions = slice_positions;
    return g;
  }
};

// Writes `volume` as NIfTI (.nii or .nii.gz) with ITK: int16 HU, affine from the DICOM geometry.
// The file appears atomically (written to a temporary name in the same folder, then renamed).
void write_nifti(const Volume& volume, const std::string& path);

// Writes a label map (one uint8 per voxel, same layout as `geometry.hu`) as NIfTI with the geometry of
// `geometry`, atomically. Used for vertebra masks.
void write_label_nifti(const Volume& geometry, const std::vector<uint8_t>& labels, const std::string& path);

// Reads a label NIfTI (any orientation, through its header) onto the voxel grid of `ct` with nearest-neighbour
// sampling: one uint8 per CT voxel, same layout as `ct.hu`; voxels the file does not cover get 0.
std::vector<uint8_t> read_labels_on_grid(const std::string& path, const Volume& ct);

// Reads a NIfTI file with ITK (through its header, so orientation is honoured) as int16 values.
Volume read_nifti(const std::string& path);

}  // namespace cspine
