// A small CSV reader for the tables cspine reads (Kaggle CSVs, labels, boxes): a header row, comma-separated
// fields, double quotes, BOM and CRLF tolerated. Content errors name the file and line (InvalidInputError).
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cspine {

// The whole file as text (UTF-8 BOM removed); InputError naming `what` and the path when it cannot be read.
std::string read_text(const std::string& path, const char* what);
std::string trim(const std::string& s);
// One CSV record; fields may be double-quoted ("" inside quotes is a quote). No multi-line fields.
std::vector<std::string> split_csv(const std::string& line);

struct CsvLine {
  int number;  // 1-based line in the file
  std::vector<std::string> fields;
};

struct Csv {
  std::string path;
  std::map<std::string, std::size_t> columns;
  std::vector<CsvLine> rows;

  std::string where(int line) const { return path + ":" + std::to_string(line); }
  std::optional<std::size_t> column(const std::string& name) const;
  // The column's index, or InvalidInputError "no column 'name' in the header" + why.
  std::size_t require(const std::string& name, const std::string& why) const;
  // Field `col` of a row, or InvalidInputError naming the line when the row is too short.
  const std::string& field(const CsvLine& r, std::size_t col) const;
};

// Reads a CSV with a header row; blank lines are skipped. `what` names the file's role in messages.
Csv read_csv(const std::string& path, const char* what);

}  // namespace cspine
