// The `inspect` report: what was found under a path, as JSON or as a human-readable listing.
#pragma once
#include <string>

#include "cspine/dicom.h"

namespace cspine {

std::string inspect_json(const StudyIndex& index, int indent = 2);
std::string inspect_text(const StudyIndex& index);

}  // namespace cspine
