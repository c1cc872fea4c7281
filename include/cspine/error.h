// One exception hierarchy for the whole library; the CLI catches it once and maps it to an exit code.
#pragma once
#include <stdexcept>
#include <string>

#include "cspine/exit_codes.h"

namespace cspine {

class Error : public std::runtime_error {
public:
  Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ExitCode code() const noexcept { return code_; }

private:
  ExitCode code_;
};

// The input path does not exist or cannot be listed.
struct InputError : Error {
  explicit InputError(const std::string& m) : Error(ExitCode::input_not_found, m) {}
};
// An input file was read but its content is invalid (a CSV row, a JSON field): names the file, line and row.
struct InvalidInputError : Error {
  explicit InvalidInputError(const std::string& m) : Error(ExitCode::invalid_input, m) {}
};
// A model file is missing, unreadable, or breaks the model contract (names the file and the field).
struct ModelError : Error {
  explicit ModelError(const std::string& m) : Error(ExitCode::model, m) {}
};
// Files were found but none was usable DICOM.
struct NoDicomError : Error {
  explicit NoDicomError(const std::string& m) : Error(ExitCode::no_dicom, m) {}
};
// DICOM was found but no series could be turned into a volume (names the file and what is missing).
struct SeriesError : Error {
  explicit SeriesError(const std::string& m) : Error(ExitCode::unusable_series, m) {}
};
// An output could not be written.
struct OutputError : Error {
  explicit OutputError(const std::string& m) : Error(ExitCode::output_error, m) {}
};
// Wrong use of an option that the parser could not catch (for example several studies for one output).
struct UsageError : Error {
  explicit UsageError(const std::string& m) : Error(ExitCode::usage, m) {}
};

// The device asked for (a GPU, half precision) cannot be used; the CLI names the option it came from.
struct DeviceError : UsageError {
  explicit DeviceError(const std::string& m) : UsageError(m) {}
};

// A batch command stopped by SIGINT or SIGTERM after saving what it had finished.
struct InterruptedError : Error {
  explicit InterruptedError(const std::string& m) : Error(ExitCode::interrupted, m) {}
};

}  // namespace cspine
