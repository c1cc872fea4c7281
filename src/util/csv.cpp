#include "util/csv.h"

#include <fstream>
#include <sstream>

#include "cspine/error.h"

namespace cspine {

std::string read_text(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot read " + std::string(what) + " '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.size() >= 3 && s.compare(0, 3, "\xEF\xBB\xBF") == 0) s.erase(0, 3);  // UTF-8 BOM
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') cur += '"', ++i;
      else if (c == '"') quoted = false;
      else cur += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.push_back(trim(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(trim(cur));
  return out;
}

std::optional<std::size_t> Csv::column(const std::string& name) const {
  auto it = columns.find(name);
  if (it == columns.end()) return std::nullopt;
  return it->second;
}

std::size_t Csv::require(const std::string& name, const std::string& why) const {
  auto c = column(name);
  if (!c) throw InvalidInputError(path + ": no column '" + name + "' in the header" + why);
  return *c;
}

const std::string& Csv::field(const CsvLine& r, std::size_t col) const {
  if (col >= r.fields.size())
    throw InvalidInputError(where(r.number) + ": " + std::to_string(r.fields.size()) + " fields, expected at least " +
                            std::to_string(col + 1));
  return r.fields[col];
}

Csv read_csv(const std::string& path, const char* what) {
  const std::string text = read_text(path, what);
  Csv csv;
  csv.path = path;
  std::istringstream in(text);
  std::string line;
  int number = 0;
  bool header = false;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (trim(line).empty()) continue;
    auto fields = split_csv(line);
    if (!header) {
      for (std::size_t i = 0; i < fields.size(); ++i) {
        if (csv.columns.count(fields[i]))
          throw InvalidInputError(csv.where(number) + ": column '" + fields[i] + "' appears twice in the header");
        csv.columns[fields[i]] = i;
      }
      header = true;
      continue;
    }
    csv.rows.push_back({number, std::move(fields)});
  }
  if (!header) throw InvalidInputError(path + ": empty file (no header)");
  return csv;
}

}  // namespace cspine
