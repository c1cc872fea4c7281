#include "cspine/vertebrae.h"

namespace cspine {

std::string row_id(const std::string& study_uid, int label) {
  return study_uid + "_" + kLabelNames.at(static_cast<std::size_t>(label));
}

std::optional<std::pair<std::string, int>> split_row_id(const std::string& row_id) {
  static const std::string overall = std::string("_") + kLabelNames[0];
  if (row_id.size() > overall.size() && row_id.compare(row_id.size() - overall.size(), overall.size(), overall) == 0)
    return std::make_pair(row_id.substr(0, row_id.size() - overall.size()), 0);
  if (row_id.size() > 3 && row_id.compare(row_id.size() - 3, 2, "_C") == 0) {
    const char d = row_id.back();
    if (d >= '1' && d < '1' + kVertebrae) return std::make_pair(row_id.substr(0, row_id.size() - 3), d - '0');
  }
  return std::nullopt;
}

}  // namespace cspine
