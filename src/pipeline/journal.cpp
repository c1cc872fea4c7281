#include "pipeline/journal.h"

#include <unistd.h>

#include <fstream>

#include "cspine/error.h"
#include "cspine/runtime.h"
#include "util/atomic_file.h"
#include "util/text.h"

namespace cspine {

using nlohmann::json;

Journal::Journal(std::string path_in, const json& header, bool resume) : path_(std::move(path_in)) {
  const std::string& path = path_;
  std::vector<json>& previous = previous_;
  if (resume) {
    std::ifstream in(path);
    if (!in) {
      log_warn("--resume: no progress journal at '" + path + "', starting from the first study");
    } else {
      std::string line;
      int number = 0;
      while (std::getline(in, line)) {
        ++number;
        json j;
        try {
          j = json::parse(line);
        } catch (const json::exception&) {
          // Only a last line can be half-written by a run that stopped; an unreadable header means the file
          // is not (or no longer) a journal, and its entries cannot be matched to the models.
          if (number == 1)
            throw UsageError("--resume: '" + path + "' does not start with a cspine progress header (line 1 is "
                             "unreadable); run without --resume to start over");
          log_warn(path + ":" + std::to_string(number) + ": unreadable line ignored (a run stopped while writing it)");
          continue;
        }
        if (number == 1) {
          if (!j.is_object() || !j.contains("cspine_progress"))
            throw InvalidInputError(path + ": not a cspine progress journal");
          if (j.value("models", json()) != header.at("models"))
            throw UsageError("--resume: '" + path +
                             "' was written with other models (or other model files); run without --resume to start over");
          continue;
        }
        if (!j.is_object() || !j.contains("study_uid") || !j["study_uid"].is_string()) {
          log_warn(path + ":" + std::to_string(number) + ": line without a study ignored");
          continue;
        }
        previous.push_back(std::move(j));
      }
    }
  }
  // Rewrite the journal with what is kept, so a half-written last line never stays in the middle.
  std::string text = dump_json(header) + "\n";
  for (const auto& e : previous) text += dump_json(e) + "\n";
  write_text_atomically(path, text);
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) throw OutputError("cannot append to the progress journal '" + path + "'");
}

Journal::~Journal() {
  if (file_) std::fclose(file_);
}

void Journal::entry(const json& e) {
  const std::string line = dump_json(e) + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
    throw OutputError("cannot append to the progress journal '" + path_ + "'");
  ::fsync(::fileno(file_));
}

JournalContents read_journal(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InvalidInputError("cannot read the progress journal '" + path + "'");
  JournalContents out;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    json j = json::parse(line, nullptr, false);
    if (number == 1) {
      if (j.is_discarded() || !j.is_object() || !j.contains("cspine_progress"))
        throw InvalidInputError(path + ": not a cspine progress journal (line 1 is not its header)");
      out.header = std::move(j);
      continue;
    }
    if (j.is_discarded() || !j.is_object() || !j.contains("study_uid") || !j["study_uid"].is_string()) {
      log_warn(path + ":" + std::to_string(number) + ": unreadable line ignored (a run stopped while writing it?)");
      continue;
    }
    out.entries.push_back(std::move(j));
  }
  if (number == 0) throw InvalidInputError(path + ": empty progress journal");
  return out;
}

}  // namespace cspine
