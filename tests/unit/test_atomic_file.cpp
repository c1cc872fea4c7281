#include <gtest/gtest.h>

#include <fstream>

#include "cspine/error.h"
#include "support/fixtures.h"
#include "util/atomic_file.h"

using namespace cspine;
using namespace cspine::test;

namespace {
std::size_t count_files(const fs::path& dir) {
  std::size_t n = 0;
  for (auto& e : fs::directory_iterator(dir)) n += e.is_regular_file();
  return n;
}
}  // namespace

TEST(AtomicFile, WritesThroughTemporaryWithSameExtension) {
  TempDir tmp;
  std::string seen;
  write_atomically(tmp / "out.nii.gz", [&](const std::string& t) {
    seen = t;
    std::ofstream(t) << "data";
  });
  EXPECT_TRUE(fs::exists(tmp / "out.nii.gz"));
  EXPECT_NE(seen, tmp / "out.nii.gz");
  EXPECT_EQ(seen.substr(seen.size() - 7), ".nii.gz");
  EXPECT_EQ(count_files(tmp.path()), 1u);
}

TEST(AtomicFile, FailureLeavesNothingAndKeepsOldFile) {
  TempDir tmp;
  std::ofstream(tmp / "out.csv") << "old";
  EXPECT_THROW(write_atomically(tmp / "out.csv",
                                [&](const std::string& t) {
                                  std::ofstream(t) << "partial";
                                  throw std::runtime_error("disk full");
                                }),
               OutputError);
  std::ifstream in(tmp / "out.csv");
  std::string content;
  in >> content;
  EXPECT_EQ(content, "old");
  EXPECT_EQ(count_files(tmp.path()), 1u);
}

TEST(AtomicFile, MissingFolderIsAnOutputError) {
  TempDir tmp;
  EXPECT_THROW(check_output_path(tmp / "no/such/dir/x.nii"), OutputError);
  EXPECT_THROW(check_output_path(tmp.str()), OutputError);  // a folder, not a file
  EXPECT_NO_THROW(check_output_path(tmp / "x.nii"));
}
