// The batch's progress journal, `<output>.progress.jsonl`: a header line (the models' fingerprints), then one
// report entry per finished study, each flushed and fsync'ed as it is appended, so a killed run (even kill -9)
// loses nothing it had finished. --resume reads it back; it is also the Writer of the journal line.
#pragma once
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "output/writers.h"

namespace cspine {

class Journal : public Writer {
public:
  // Opens `path`. With `resume`, first reads back a previous run's entries (previous()): it refuses (UsageError)
  // a journal written with other models, or whose header line is unreadable, and InvalidInputError when the
  // file is not a journal at all; half-written or study-less lines are skipped with a warning. The file is then
  // rewritten with `header` and the entries kept, so a half-written last line never stays in the middle.
  Journal(std::string path, const nlohmann::json& header, bool resume);
  ~Journal() override;
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  const std::vector<nlohmann::json>& previous() const { return previous_; }
  // Appends one entry and flushes it to disk (OutputError when that fails).
  void entry(const nlohmann::json& e) override;

private:
  std::string path_;
  std::vector<nlohmann::json> previous_;
  std::FILE* file_ = nullptr;
};

// A journal read back without touching it (cspine merge reads the shards' journals, perhaps while a task still
// writes one): the header line and the study entries; a half-written or study-less line is skipped with a
// warning. InvalidInputError when the file is unreadable or its first line is not a journal header.
struct JournalContents {
  nlohmann::json header;
  std::vector<nlohmann::json> entries;
};
JournalContents read_journal(const std::string& path);

}  // namespace cspine
