// Writes a synthetic CT series for benchmarks: cspine_make_series OUT_DIR [rows] [slices] [transfer-syntax]
#include <cstdlib>
#include <iostream>

#include "support/fixtures.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: cspine_make_series OUT_DIR [rows=512] [slices=150] [explicit|jpeg-lossless|...]\n";
    return 2;
  }
  cspine::test::SeriesSpec spec;
  spec.rows = spec.columns = argc > 2 ? std::atoi(argv[2]) : 512;
  spec.slices = argc > 3 ? std::atoi(argv[3]) : 150;
  spec.spacing_z = 1.0;
  spec.pixel_spacing = {0.4, 0.4};
  spec.head_first_numbering = true;
  if (argc > 4) {
    const auto ts = cspine::parse_transfer_syntax(argv[4]);
    if (!ts) {
      std::cerr << "unknown transfer syntax " << argv[4] << "\n";
      return 2;
    }
    spec.ts = *ts;
  }
  try {
    cspine::test::write_series(argv[1], spec);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
