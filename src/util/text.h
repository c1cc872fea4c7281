// Text that leaves cspine (JSON, CSV, logs) must be valid UTF-8: file names and DICOM text come from anywhere.
#pragma once
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace cspine {

// `s` when it is valid UTF-8; otherwise every byte that is not part of a valid sequence becomes "\xNN"
// (so a Latin-1 file name stays recognisable: "Wirbels\xE4ule").
std::string valid_utf8(std::string_view s);

// j.dump(indent) that never throws on invalid UTF-8: strings and keys that are not UTF-8 are escaped as above.
std::string dump_json(const nlohmann::json& j, int indent = -1);

}  // namespace cspine
