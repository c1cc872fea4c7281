// Exit codes are API: scripts and schedulers branch on them. README.md's table is tested against this list.
#pragma once
#include <string_view>

namespace cspine {

enum class ExitCode : int {
  ok = 0,
  internal = 1,
  usage = 2,
  input_not_found = 3,
  no_dicom = 4,
  unusable_series = 5,
  output_error = 6,
  partial = 7,
  invalid_input = 8,
  model = 9,
  interrupted = 130,
};

struct ExitCodeInfo {
  ExitCode code;
  std::string_view name;
  std::string_view meaning;
};

// Every exit code with its documented meaning, in numeric order.
inline constexpr ExitCodeInfo kExitCodes[] = {
    {ExitCode::ok, "ok", "success: every study was processed"},
    {ExitCode::internal, "internal", "unexpected internal error (a bug: please report it with the log)"},
    {ExitCode::usage, "usage", "invalid command line (unknown option, missing argument, ambiguous input)"},
    {ExitCode::input_not_found, "input-not-found", "the input path does not exist or cannot be read"},
    {ExitCode::no_dicom, "no-dicom", "no readable DICOM file was found under the input path"},
    {ExitCode::unusable_series, "unusable-series",
     "DICOM was found but no series can make a CT volume (the message names the file and what is missing)"},
    {ExitCode::output_error, "output-error", "an output file or folder could not be written"},
    {ExitCode::partial, "partial", "batch commands: some studies succeeded and some failed (each failure is logged and reported); merge: the run is incomplete (it names the shards to rerun)"},
    {ExitCode::invalid_input, "invalid-input",
     "an input file was read but its content is invalid (the message names the file, line and row)"},
    {ExitCode::model, "model-error",
     "a model file is missing, is not TorchScript, or has no valid cspine.json contract (the message says which field)"},
    {ExitCode::interrupted, "interrupted", "batch commands: interrupted by SIGINT or SIGTERM; finished studies were saved"},
};

inline constexpr int to_int(ExitCode c) { return static_cast<int>(c); }

}  // namespace cspine
