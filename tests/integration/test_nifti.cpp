// NIfTI written with ITK reads back with the same voxels and geometry, oblique directions included.
#include <gtest/gtest.h>

#include <cmath>

#include "cspine/error.h"
#include "support/fixtures.h"

using namespace cspine;
using namespace cspine::test;

TEST(Nifti, RoundTripKeepsValuesAndGeometry) {
  TempDir tmp;
  Volume v;
  v.size = {5, 4, 3};
  v.spacing = {0.5, 0.75, 1.25};
  v.origin = {-10.5, 20.25, -30.0};
  const double a = 0.3;
  // Rotation about z by a: columns are the axes.
  v.direction = {std::cos(a), -std::sin(a), 0, std::sin(a), std::cos(a), 0, 0, 0, 1};
  v.hu.resize(v.voxel_count());
  for (std::size_t i = 0; i < v.hu.size(); ++i) v.hu[i] = static_cast<int16_t>(static_cast<int>(i) * 37 - 1024);
  for (const char* name : {"v.nii", "v.nii.gz"}) {
    write_nifti(v, tmp / name);
    const Volume r = read_nifti(tmp / name);
    EXPECT_EQ(r.size, v.size);
    EXPECT_EQ(r.hu, v.hu);
    for (int d = 0; d < 3; ++d) {
      EXPECT_NEAR(r.spacing[d], v.spacing[d], 1e-5);
      EXPECT_NEAR(r.origin[d], v.origin[d], 1e-4);
    }
    for (int i = 0; i < 9; ++i) EXPECT_NEAR(r.direction[i], v.direction[i], 1e-5) << i;
  }
}

TEST(Nifti, UnwritableOutputIsAnOutputError) {
  TempDir tmp;
  Volume v;
  v.size = {1, 1, 1};
  v.hu = {0};
  EXPECT_THROW(write_nifti(v, tmp / "missing/dir/v.nii"), OutputError);
}
