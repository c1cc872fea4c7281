// Parsing and validating the model contract (cspine.json). The rules match scripts/cspine_models/contract.py;
// messages name the file and the field so a user can fix an export without reading our code.
//
// The document is untrusted (any .pt file a user passes): every field is type-checked before it is read, and
// integers are range-checked as 64-bit values before narrowing, so a wrong type or a huge number is a ModelError
// naming the field, never a JSON library exception or a silent wrap-around.
#include "cspine/contract.h"

#include <climits>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "cspine/backend.h"
#include "cspine/error.h"
#include "cspine/vertebrae.h"

namespace cspine {

namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw ModelError(source + ": model contract: " + what);
}

void need(bool ok, const std::string& source, const std::string& what) {
  if (!ok) fail(source, what);
}

bool is_int(const json& j) { return j.is_number_integer() || j.is_number_unsigned(); }

// An integer value within [lo, hi], checked before narrowing (2^32 + 64 must not pass as 64).
bool int_in(const json& j, int64_t lo, int64_t hi) {
  if (j.is_number_unsigned()) {
    const uint64_t u = j.get<uint64_t>();
    return u <= static_cast<uint64_t>(INT64_MAX) && static_cast<int64_t>(u) >= lo && static_cast<int64_t>(u) <= hi;
  }
  if (j.is_number_integer()) return j.get<int64_t>() >= lo && j.get<int64_t>() <= hi;
  return false;
}

bool finite_number(const json& j) { return j.is_number() && std::isfinite(j.get<double>()); }

// A short rendering of a value for messages (type and, for scalars, the value), bounded in length.
std::string shown(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 40) s = s.substr(0, 37) + "...";
  return std::string(j.type_name()) + " " + s;
}

// Typed access to the fields of one object: `path` is the prefix used in messages ("input.").
class Fields {
public:
  Fields(const json& object, std::string path, const std::string& source)
      : obj_(object), path_(std::move(path)), source_(source) {}

  const json* find(const char* name) const {
    const auto it = obj_.find(name);
    return it == obj_.end() ? nullptr : &*it;
  }
  std::string name(const char* field) const { return "'" + path_ + field + "'"; }

  // A string field; `fallback` when absent (nullptr: required).
  std::string string(const char* field, const char* fallback = nullptr) const {
    const json* v = find(field);
    if (!v) {
      need(fallback != nullptr, source_, name(field) + " missing");
      return fallback;
    }
    need(v->is_string(), source_, name(field) + " must be a string, got " + shown(*v));
    return v->get<std::string>();
  }
  // A string field that must equal `expected` (absent is allowed when `optional`).
  void expect_string(const char* field, const std::string& expected, bool optional) const {
    const json* v = find(field);
    if (!v && optional) return;
    need(v && v->is_string() && v->get<std::string>() == expected, source_,
         name(field) + " must be \"" + expected + "\"" + (v ? ", got " + shown(*v) : std::string(" (missing)")));
  }
  int integer(const char* field, int64_t lo, int64_t hi, const std::string& rule, std::optional<int> fallback = {}) const {
    const json* v = find(field);
    if (!v) {
      need(fallback.has_value(), source_, name(field) + " missing: " + rule);
      return *fallback;
    }
    need(int_in(*v, lo, hi), source_, name(field) + " " + rule + ", got " + shown(*v));
    return static_cast<int>(v->get<int64_t>());
  }
  double number(const char* field, double lo, double hi, const std::string& rule) const {
    const json* v = find(field);
    need(v && finite_number(*v) && v->get<double>() >= lo && v->get<double>() <= hi, source_,
         name(field) + " " + rule + (v ? ", got " + shown(*v) : std::string(" (missing)")));
    return v->get<double>();
  }
  const json& object(const char* field) const {
    const json* v = find(field);
    need(v && v->is_object(), source_, name(field) + " missing or not an object");
    return *v;
  }

private:
  const json& obj_;
  std::string path_;
  const std::string& source_;
};

// A version-2 choice field ("input.resize": "opencv_linear"): absent -> `fallback`; in a version-1 document only
// the version-1 value (the first of `names`) is accepted, and another is refused with the fix.
template <typename E>
E choice(const Fields& f, const char* field, const std::vector<std::pair<const char*, E>>& names, int version,
         const std::string& source) {
  const json* v = f.find(field);
  if (!v) return names.front().second;
  std::string list;
  for (const auto& [n, e] : names) list += (list.empty() ? "\"" : ", \"") + std::string(n) + "\"";
  need(v->is_string(), source, f.name(field) + " must be one of " + list + ", got " + shown(*v));
  const std::string s = v->get<std::string>();
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (s != names[i].first) continue;
    need(i == 0 || version >= 2, source,
         f.name(field) + " \"" + s + "\" needs contract_version 2 (this document says 1)");
    return names[i].second;
  }
  fail(source, f.name(field) + " must be one of " + list + ", got " + shown(*v));
}

// A list of strings equal to `expected` (the first expected.size() entries when `prefix_only`).
bool strings_are(const json& j, const std::vector<std::string>& expected, bool prefix_only) {
  if (!j.is_array() || j.size() < expected.size() || (!prefix_only && j.size() != expected.size())) return false;
  for (std::size_t i = 0; i < expected.size(); ++i)
    if (!j[i].is_string() || j[i].get<std::string>() != expected[i]) return false;
  return true;
}

}  // namespace

ModelContract parse_contract(const std::string& text, const std::string& source) {
  json c;
  try {
    c = json::parse(text);
  } catch (const json::exception& e) {
    fail(source, std::string("cspine.json is not valid JSON (") + e.what() + ")");
  }
  need(c.is_object(), source, "cspine.json is not a JSON object");
  const Fields top(c, "", source);
  top.expect_string("format", "cspine-model", false);
  const json* version = top.find("contract_version");
  need(version && is_int(*version), source, "'contract_version' missing or not an integer");
  const bool newer = version->is_number_unsigned() ? version->get<uint64_t>() > kContractVersion
                                                  : version->get<int64_t>() > kContractVersion;
  need(!newer, source,
       "contract_version " + version->dump() + " is newer than this cspine understands (" +
           std::to_string(kContractVersion) + "); update cspine or export with an older contract");
  ModelContract m;
  need(int_in(*version, 1, kContractVersion), source, "contract_version " + version->dump() + " is not valid");
  m.version = static_cast<int>(version->get<int64_t>());
  const std::string kind = top.string("kind", "");
  need(kind == "segmentation" || kind == "classifier", source,
       "'kind' must be \"segmentation\" or \"classifier\", got \"" + kind + "\"");
  m.kind = kind == "segmentation" ? ModelKind::segmentation : ModelKind::classifier;
  const bool seg = m.kind == ModelKind::segmentation;

  need(c.contains("input") && c["input"].is_object(), source, "'input' missing");
  const json& in = c["input"];
  const Fields input(in, "input.", source);
  const json* offs = input.find("slice_offsets");
  const std::string offsets_rule = "'input.slice_offsets' must be a non-empty list of at most 64 integers in -1000..1000";
  need(offs && offs->is_array() && !offs->empty() && offs->size() <= 64, source, offsets_rule);
  m.slice_offsets.clear();
  for (const auto& o : *offs) {
    need(int_in(o, -1000, 1000), source, offsets_rule);
    m.slice_offsets.push_back(static_cast<int>(o.get<int64_t>()));
  }
  const json* channels = input.find("channels");
  need(channels && int_in(*channels, 1, 64) && channels->get<int64_t>() == m.channels(), source,
       "'input.channels' must equal the number of slice offsets");
  const json* size = input.find("size");
  need(size && size->is_array() && size->size() == 2 && int_in((*size)[0], 8, 2048) && int_in((*size)[1], 8, 2048),
       source, "'input.size' must be [height, width] in 8..2048");
  m.height = static_cast<int>((*size)[0].get<int64_t>());
  m.width = static_cast<int>((*size)[1].get<int64_t>());
  const int ver = m.version;
  m.slice_order = choice<SliceOrderRule>(
      input, "slice_order", {{"position", SliceOrderRule::position}, {"instance_number", SliceOrderRule::instance_number}},
      ver, source);
  m.edge = choice<EdgeRule>(input, "edge", {{"clamp", EdgeRule::clamp}, {"zeros", EdgeRule::zeros}}, ver, source);
  m.intensity = choice<IntensityRule>(
      input, "intensity", {{"hu_window", IntensityRule::hu_window}, {"slice_minmax", IntensityRule::slice_minmax}}, ver,
      source);
  m.resize = choice<ResizeRule>(input, "resize",
                                {{"bilinear", ResizeRule::bilinear},
                                 {"opencv_nearest", ResizeRule::opencv_nearest},
                                 {"opencv_linear", ResizeRule::opencv_linear}},
                                ver, source);
  const json* w = input.find("hu_window");
  if (w || m.intensity == IntensityRule::hu_window) {
    need(w && w->is_array() && w->size() == 2 && finite_number((*w)[0]) && finite_number((*w)[1]) &&
             (*w)[1].get<double>() > (*w)[0].get<double>(),
         source, "'input.hu_window' must be [low, high] with high > low");
    m.hu_low = (*w)[0].get<double>();
    m.hu_high = (*w)[1].get<double>();
  }
  input.expect_string("layout", seg ? "NCHW" : "VNCHW", true);
  input.expect_string("dtype", "float32", true);

  need(c.contains("output") && c["output"].is_object(), source, "'output' missing");
  const json& out = c["output"];
  const Fields output(out, "output.", source);
  if (seg) {
    const json* cls = output.find("classes");
    std::vector<std::string> first_classes{"background"};
    first_classes.insert(first_classes.end(), kVertebraNames.begin(), kVertebraNames.end());
    need(cls && strings_are(*cls, first_classes, true) && cls->size() <= 255,
         source, "'output.classes' must start with background, C1..C7 (at most 255 classes, all strings)");
    for (const auto& s : *cls) {
      need(s.is_string(), source, "'output.classes' must be a list of strings");
      m.classes.push_back(s.get<std::string>());
    }
    m.activation = choice<ActivationRule>(
        output, "activation", {{"softmax", ActivationRule::softmax}, {"sigmoid", ActivationRule::sigmoid}}, ver, source);
    if (m.activation == ActivationRule::sigmoid) {
      const json* t = output.find("threshold");
      need(t && finite_number(*t) && t->get<double>() > 0 && t->get<double>() < 1, source,
           "'output.threshold' must be a number in (0, 1) with a sigmoid activation" +
               (t ? ", got " + shown(*t) : std::string(" (missing)")));
      m.threshold = t->get<double>();
    } else {
      need(!output.find("threshold"), source, "'output.threshold' is only for a sigmoid activation");
    }
    if (const json* cl = output.find("channel_labels")) {
      need(ver >= 2, source, "'output.channel_labels' needs contract_version 2 (this document says 1)");
      const std::string rule = "'output.channel_labels' must be a non-empty list of at most 255 labels in 0.." +
                               std::to_string(m.classes.size() - 1) + " (indices into output.classes)";
      need(cl->is_array() && !cl->empty() && cl->size() <= 255, source, rule);
      for (const auto& l : *cl) {
        need(int_in(l, 0, static_cast<int64_t>(m.classes.size()) - 1), source, rule + ", got " + shown(l));
        m.channel_labels.push_back(static_cast<int>(l.get<int64_t>()));
      }
    } else {
      for (std::size_t i = 0; i < m.classes.size(); ++i) m.channel_labels.push_back(static_cast<int>(i));
    }
    m.cleanup = choice<CleanupRule>(
        output, "cleanup", {{"largest_component", CleanupRule::largest_component}, {"none", CleanupRule::none}}, ver,
        source);
  } else {
    m.slices_per_vertebra = input.integer("slices_per_vertebra", 1, 256, "must be an integer in 1..256");
    m.locate = choice<LocateRule>(input, "locate", {{"extents", LocateRule::extents}, {"study_box", LocateRule::study_box}},
                                  ver, source);
    m.crop = choice<CropRule>(input, "crop", {{"square", CropRule::square}, {"study_box", CropRule::study_box}}, ver,
                              source);
    m.select = choice<SelectRule>(
        input, "select", {{"spread", SelectRule::spread}, {"linspace_floor", SelectRule::linspace_floor}}, ver, source);
    const bool v1_rules = m.locate == LocateRule::extents && m.crop == CropRule::square && m.select == SelectRule::spread;
    const bool box_rules =
        m.locate == LocateRule::study_box && m.crop == CropRule::study_box && m.select == SelectRule::linspace_floor;
    need(v1_rules || box_rules, source,
         "'input.locate', 'input.crop' and 'input.select' must be (extents, square, spread) or (study_box, study_box, "
         "linspace_floor); other combinations are not supported");
    if (m.crop == CropRule::square || input.find("crop_margin"))
      m.crop_margin = input.number("crop_margin", 0, 2, "must be a number in 0..2");
    if (m.locate == LocateRule::study_box)
      m.box_min_voxels = input.integer("box_min_voxels", 1, 1000000000, "must be an integer in 1..1e9", m.box_min_voxels);
    else
      need(!input.find("box_min_voxels"), source, "'input.box_min_voxels' is only for input.locate \"study_box\"");
    m.min_slices = input.integer("min_slices", 1, 100000, "must be a positive integer", m.min_slices);
    const json* vs = output.find("vertebrae");
    need(vs && strings_are(*vs, {kVertebraNames.begin(), kVertebraNames.end()}, false), source,
         "'output.vertebrae' must be C1..C7");
    const json* p = output.find("prior");
    bool ok = p && p->is_array() && p->size() == 7;
    for (std::size_t v = 0; ok && v < 7; ++v)
      ok = finite_number((*p)[v]) && (*p)[v].get<double>() >= 0 && (*p)[v].get<double>() <= 1;
    need(ok, source, "'output.prior' must be 7 probabilities");
    for (std::size_t v = 0; v < 7; ++v) m.prior[v] = (*p)[v].get<double>();
    output.expect_string("patient_overall", "noisy_or", true);
    output.expect_string("activation", "sigmoid", true);
    m.ensemble = choice<EnsembleRule>(
        output, "ensemble", {{"single", EnsembleRule::single}, {"mean_sigmoid", EnsembleRule::mean_sigmoid}}, ver, source);
    if (const json* mem = output.find("members")) {
      need(ver >= 2, source, "'output.members' needs contract_version 2 (this document says 1)");
      need(mem->is_array() && !mem->empty() && mem->size() <= 64, source,
           "'output.members' must be a list of 1..64 ensemble members");
      m.members = static_cast<int>(mem->size());
    }
    need(m.ensemble == EnsembleRule::mean_sigmoid || m.members == 1, source,
         "'output.members' lists " + std::to_string(m.members) + " models but 'output.ensemble' is \"single\"");
    if (const json* o = output.find("outputs"))
      need(strings_are(*o, {"logit", "attention"}, false), source,
           "'output.outputs' must be [\"logit\", \"attention\"], got " + shown(*o));
  }
  if (const json* rt = top.find("runtime")) {
    need(ver >= 2, source, "'runtime' needs contract_version 2 (this document says 1)");
    need(rt->is_object(), source, "'runtime' must be an object");
    const Fields runtime(*rt, "runtime.", source);
    m.exact_numerics =
        choice<bool>(runtime, "numerics", {{"fast", false}, {"exact", true}}, ver, source);
  }
  m.json = text;
  return m;
}

cspine_input_rules input_rules(const ModelContract& c) {
  cspine_input_rules r{};
  r.hu_low = c.hu_low;
  r.hu_high = c.hu_high;
  if (c.slice_offsets.empty() || c.slice_offsets.size() > CSPINE_MAX_SLICE_OFFSETS)
    throw ModelError("a model contract with " + std::to_string(c.slice_offsets.size()) + " slice offsets (1.." +
                     std::to_string(CSPINE_MAX_SLICE_OFFSETS) + ")");
  for (std::size_t i = 0; i < c.slice_offsets.size(); ++i) r.slice_offsets[i] = c.slice_offsets[i];
  r.n_offsets = static_cast<int32_t>(c.slice_offsets.size());
  r.height = c.height;
  r.width = c.width;
  return r;
}

ModelContract read_model_contract(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw ModelError("model file '" + path + "' does not exist");
  if (std::filesystem::path(path).extension() == ".json") {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    if (!f) throw ModelError("cannot read '" + path + "'");
    return parse_contract(ss.str(), path);
  }
  std::string text;
  if (!read_model_extra(path, "cspine.json", text))
    throw ModelError("'" + path +
                     "' has no cspine.json contract inside; export it with `scripts/cspine_train.py export` "
                     "(see docs/model-contract.md)");
  return parse_contract(text, path);
}

}  // namespace cspine
