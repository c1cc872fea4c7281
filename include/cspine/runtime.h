// Process-wide set-up and facts about the build: logging, DICOM codecs, LibTorch and its devices.
#pragma once
#include <string>

namespace cspine {

enum class LogLevel { trace, debug, info, warn, error, off };

// Logs go to stderr; data goes to stdout or files.
void set_log_level(LogLevel level);
LogLevel log_level();
void log_info(const std::string& message);
void log_warn(const std::string& message);
void log_error(const std::string& message);

std::string version();
// One line per component: cspine, DCMTK, GDCM, ITK, LibTorch (with CUDA availability), threads.
std::string build_info();
int default_threads();

}  // namespace cspine
