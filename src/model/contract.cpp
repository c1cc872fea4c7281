// Parsing and validating the model contract (cspine.json). The rules match scripts/cspine_models/contract.py;
// messages name the file and the field so a user can fix an export without reading our code.
#include "cspine/contract.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cspine/backend.h"
#include "cspine/error.h"

namespace cspine {

namespace {

using nlohmann::json;

const char* const kVertebrae[] = {"C1", "C2", "C3", "C4", "C5", "C6", "C7"};

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw ModelError(source + ": model contract: " + what);
}

void need(bool ok, const std::string& source, const std::string& what) {
  if (!ok) fail(source, what);
}

bool is_int(const json& j) {
  return j.is_number_integer() || j.is_number_unsigned();
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
  need(c.value("format", "") == "cspine-model", source, "'format' must be \"cspine-model\"");
  need(c.contains("contract_version") && is_int(c["contract_version"]), source,
       "'contract_version' missing or not an integer");
  ModelContract m;
  m.version = c["contract_version"].get<int>();
  need(m.version <= kContractVersion, source,
       "contract_version " + std::to_string(m.version) + " is newer than this cspine understands (" +
           std::to_string(kContractVersion) + "); update cspine or export with an older contract");
  need(m.version >= 1, source, "contract_version " + std::to_string(m.version) + " is not valid");
  const std::string kind = c.value("kind", "");
  need(kind == "segmentation" || kind == "classifier", source,
       "'kind' must be \"segmentation\" or \"classifier\", got \"" + kind + "\"");
  m.kind = kind == "segmentation" ? ModelKind::segmentation : ModelKind::classifier;

  need(c.contains("input") && c["input"].is_object(), source, "'input' missing");
  const json& in = c["input"];
  const json offs = in.value("slice_offsets", json());
  need(offs.is_array() && !offs.empty(), source, "'input.slice_offsets' must be a non-empty list of integers");
  m.slice_offsets.clear();
  for (const auto& o : offs) {
    need(is_int(o), source, "'input.slice_offsets' must be a non-empty list of integers");
    m.slice_offsets.push_back(o.get<int>());
  }
  need(in.contains("channels") && is_int(in["channels"]) && in["channels"].get<int>() == m.channels(), source,
       "'input.channels' must equal the number of slice offsets");
  const json size = in.value("size", json());
  need(size.is_array() && size.size() == 2 && is_int(size[0]) && is_int(size[1]), source,
       "'input.size' must be [height, width] in 8..2048");
  m.height = size[0].get<int>();
  m.width = size[1].get<int>();
  need(m.height >= 8 && m.height <= 2048 && m.width >= 8 && m.width <= 2048, source,
       "'input.size' must be [height, width] in 8..2048");
  const json w = in.value("hu_window", json());
  need(w.is_array() && w.size() == 2 && w[0].is_number() && w[1].is_number() && w[1].get<double>() > w[0].get<double>(),
       source, "'input.hu_window' must be [low, high] with high > low");
  m.hu_low = w[0].get<double>();
  m.hu_high = w[1].get<double>();
  need(in.value("resize", "bilinear") == "bilinear", source, "'input.resize' must be \"bilinear\"");

  need(c.contains("output") && c["output"].is_object(), source, "'output' missing");
  const json& out = c["output"];
  if (m.kind == ModelKind::segmentation) {
    const json cls = out.value("classes", json());
    bool ok = cls.is_array() && cls.size() >= 8 && cls[0] == "background";
    for (int v = 0; ok && v < 7; ++v) ok = cls[static_cast<std::size_t>(v + 1)] == kVertebrae[v];
    need(ok, source, "'output.classes' must start with background, C1..C7");
    for (const auto& s : cls) m.classes.push_back(s.is_string() ? s.get<std::string>() : s.dump());
  } else {
    need(in.contains("slices_per_vertebra") && is_int(in["slices_per_vertebra"]) &&
             in["slices_per_vertebra"].get<int>() >= 1 && in["slices_per_vertebra"].get<int>() <= 256,
         source, "'input.slices_per_vertebra' must be an integer in 1..256");
    m.slices_per_vertebra = in["slices_per_vertebra"].get<int>();
    need(in.contains("crop_margin") && in["crop_margin"].is_number() && in["crop_margin"].get<double>() >= 0 &&
             in["crop_margin"].get<double>() <= 2,
         source, "'input.crop_margin' must be a number in 0..2");
    m.crop_margin = in["crop_margin"].get<double>();
    if (in.contains("min_slices")) {
      need(is_int(in["min_slices"]) && in["min_slices"].get<int>() >= 1, source,
           "'input.min_slices' must be a positive integer");
      m.min_slices = in["min_slices"].get<int>();
    }
    const json vs = out.value("vertebrae", json());
    bool ok = vs.is_array() && vs.size() == 7;
    for (int v = 0; ok && v < 7; ++v) ok = vs[static_cast<std::size_t>(v)] == kVertebrae[v];
    need(ok, source, "'output.vertebrae' must be C1..C7");
    const json p = out.value("prior", json());
    ok = p.is_array() && p.size() == 7;
    for (std::size_t v = 0; ok && v < 7; ++v)
      ok = p[v].is_number() && p[v].get<double>() >= 0 && p[v].get<double>() <= 1;
    need(ok, source, "'output.prior' must be 7 probabilities");
    for (std::size_t v = 0; v < 7; ++v) m.prior[v] = p[v].get<double>();
    need(out.value("patient_overall", "noisy_or") == "noisy_or", source,
         "'output.patient_overall' must be \"noisy_or\"");
  }
  m.json = text;
  return m;
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
