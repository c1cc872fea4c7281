#include <nlohmann/json.hpp>

#include <cmath>
#include <sstream>

#include "util/text.h"
#include "cspine/dicom.h"
#include "cspine/inspect.h"

namespace cspine {

namespace {

using nlohmann::json;

json warnings_json(const Warnings& ws) {
  json a = json::array();
  for (const auto& w : ws) a.push_back({{"code", w.code}, {"message", w.message}});
  return a;
}

// Spacing and slice facts from headers only (no decoding): z from the positions, as the loader does.
struct SeriesFacts {
  std::array<double, 3> spacing{0, 0, 0};
  SliceOrder order;
  bool ordered = false;
};

SeriesFacts facts(const SeriesInfo& s) {
  SeriesFacts f;
  if (s.slices.empty()) return f;
  const auto& h = s.slices.front();
  if (h.pixel_spacing) f.spacing = {(*h.pixel_spacing)[1], (*h.pixel_spacing)[0], 0.0};
  const bool placeable = std::all_of(s.slices.begin(), s.slices.end(), [](auto& x) { return x.position && x.orientation; });
  if (placeable) {
    try {
      f.order = order_slices(s.slices);
      f.ordered = true;
      f.spacing[2] = f.order.spacing > 0 ? f.order.spacing : h.slice_thickness.value_or(0.0);
    } catch (const std::exception&) {
    }
  }
  return f;
}

}  // namespace

std::string inspect_json(const StudyIndex& index, int indent) {
  json root;
  root["root"] = index.root;
  root["files_seen"] = index.files_seen;
  root["dicom_files"] = index.dicom_files;
  root["skipped_files"] = index.skipped_files;
  root["warnings"] = warnings_json(index.warnings);
  json studies = json::array();
  for (const auto& st : index.studies) {
    json js;
    js["study_uid"] = st.study_uid;
    js["selected_series_uid"] = st.selected_series >= 0 ? json(st.series[static_cast<std::size_t>(st.selected_series)].series_uid) : json(nullptr);
    js["selection_reason"] = st.selection_reason;
    json series = json::array();
    for (const auto& s : st.series) {
      const SeriesFacts f = facts(s);
      json j;
      j["series_uid"] = s.series_uid;
      j["series_number"] = s.series_number ? json(*s.series_number) : json(nullptr);
      j["description"] = s.description;
      j["modality"] = s.modality;
      j["selected"] = s.selected;
      j["eligible"] = s.eligibility.empty();
      if (!s.eligibility.empty()) j["not_eligible_because"] = s.eligibility;
      j["slices"] = f.ordered ? f.order.order.size() : s.slices.size();
      j["images"] = s.slices.size();
      j["rows"] = s.slices.empty() ? 0 : s.slices.front().rows;
      j["columns"] = s.slices.empty() ? 0 : s.slices.front().columns;
      j["spacing_mm"] = {f.spacing[0], f.spacing[1], f.spacing[2]};
      if (!s.slices.empty() && s.slices.front().orientation) {
        const auto& o = *s.slices.front().orientation;
        j["orientation"] = {o[0], o[1], o[2], o[3], o[4], o[5]};
      } else {
        j["orientation"] = nullptr;
      }
      if (f.ordered) {
        j["tilt_degrees"] = f.order.tilt_degrees;
        j["z_extent_mm"] = f.order.positions.empty() ? 0.0 : f.order.positions.back() - f.order.positions.front();
        // InstanceNumber 1 at the top of the normal (head for axial series) or at the bottom.
        j["numbering"] = f.order.reversed_numbering ? "head-first" : "feet-first";
      }
      json xs = json::array(), names = json::array();
      for (const auto& x : s.transfer_syntaxes) {
        xs.push_back(x);
        names.push_back(transfer_syntax_name(x));
      }
      j["transfer_syntaxes"] = xs;
      j["transfer_syntax_names"] = names;
      Warnings ws = s.warnings;
      if (f.ordered) ws.insert(ws.end(), f.order.warnings.begin(), f.order.warnings.end());
      j["warnings"] = warnings_json(ws);
      series.push_back(j);
    }
    js["series"] = series;
    studies.push_back(js);
  }
  root["studies"] = studies;
  return dump_json(root, indent) + "\n";
}

std::string inspect_text(const StudyIndex& index) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os << index.root << ": " << index.studies.size() << " study(ies), " << index.dicom_files << " DICOM file(s) of "
     << index.files_seen << " seen";
  if (index.skipped_files) os << ", " << index.skipped_files << " unreadable";
  os << "\n";
  for (const auto& w : index.warnings) os << "  warning [" << w.code << "] " << w.message << "\n";
  for (const auto& st : index.studies) {
    os << "\nstudy " << st.study_uid << "\n  " << (st.selected_series >= 0 ? "selected: " : "") << st.selection_reason
       << "\n";
    for (const auto& s : st.series) {
      const SeriesFacts f = facts(s);
      os << (s.selected ? "  * " : "    ") << "series " << s.series_uid;
      if (s.series_number) os << " (#" << *s.series_number << ")";
      if (!s.description.empty()) os << " \"" << s.description << "\"";
      os << "\n      " << s.modality << ", " << (f.ordered ? f.order.order.size() : s.slices.size()) << " slices";
      if (!s.slices.empty()) os << ", " << s.slices.front().rows << "x" << s.slices.front().columns;
      os.precision(3);
      os << ", spacing " << f.spacing[0] << " x " << f.spacing[1] << " x " << f.spacing[2] << " mm";
      if (!s.slices.empty() && s.slices.front().orientation) {
        os.precision(2);
        os << ", orientation [";
        const auto& o = *s.slices.front().orientation;
        for (int i = 0; i < 6; ++i) os << (i ? " " : "") << o[static_cast<std::size_t>(i)];
        os << "]";
      }
      os << "\n      transfer syntax:";
      for (const auto& x : s.transfer_syntaxes) os << " " << transfer_syntax_name(x);
      os << "\n";
      if (!s.eligibility.empty()) os << "      not eligible: " << s.eligibility << "\n";
      Warnings ws = s.warnings;
      if (f.ordered) ws.insert(ws.end(), f.order.warnings.begin(), f.order.warnings.end());
      for (const auto& w : ws) os << "      warning [" << w.code << "] " << w.message << "\n";
    }
  }
  return os.str();
}

}  // namespace cspine
