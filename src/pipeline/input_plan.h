// The input plan (`cspine plan INPUT -o plan.json`): the input's studies and, for each, where its files are, so
// that the tasks of a cluster job read the headers of their own studies only instead of each walking and
// indexing the whole tree (docs/cluster.md). A study's files are named by its "roots": the highest folders under
// the input that hold files of that study only (an RSNA tree: one folder per study), or, in a folder shared with
// other studies, the study's files one by one. Paths are relative to the input, which is stored absolute.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "cspine/dicom.h"

namespace cspine {

struct PlannedStudy {
  std::string uid;
  std::vector<std::string> roots;  // relative to the input ("" is the input itself), folders or files
};

struct InputPlan {
  std::string input;                  // absolute
  std::vector<PlannedStudy> studies;  // sorted by StudyInstanceUID
  std::size_t files = 0, dicom_files = 0;
  double index_seconds = 0;           // how long the walk and the header reads took
  std::string id;                     // FNV-1a of the input and the studies: what the shards of one run share
};

// The plan of a full scan of `index.root` (an absolute path: scan_studies(absolute input)).
InputPlan plan_from_index(const StudyIndex& index, double index_seconds);

// plan.json: {"cspine_plan": 1, "id", "input", "files", "dicom_files", "index_seconds", "studies": [{"uid",
// "roots"}]}. Reading checks every field (InvalidInputError naming the file and the field) and recomputes the id.
void write_input_plan(const InputPlan& plan, const std::string& path);
InputPlan read_input_plan(const std::string& path);

// The index of the plan's studies named in `uids` only, from their roots (a root that has gone is logged, and
// its study then fails alone when it is scored). An empty index when `uids` is empty.
StudyIndex scan_planned(const InputPlan& plan, const std::vector<std::string>& uids, const ScanOptions& options);

}  // namespace cspine
