// fuzz_contract: untrusted bytes as a model contract (the cspine.json inside a model file) -> parse_contract.
// It must answer bad input with cspine::Error (ModelError naming the field); any other exception that
// escapes (for example a nlohmann::json type_error from a field of the wrong type) is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "cspine/contract.h"
#include "cspine/error.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cspine::fuzz::quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  try {
    const cspine::ModelContract c = cspine::parse_contract(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    // What a valid contract promises the rest of the pipeline.
    if (c.slice_offsets.empty() || c.height < 8 || c.height > 2048 || c.width < 8 || c.width > 2048 ||
        !(c.hu_high > c.hu_low))
      __builtin_trap();
  } catch (const cspine::Error&) {
  }
  return 0;
}
