#include "util/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <mutex>

#include "cspine/runtime.h"

namespace cspine::log {

std::shared_ptr<spdlog::logger> get() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto l = spdlog::stderr_color_mt("cspine");
    l->set_pattern("%^[%H:%M:%S.%e %l]%$ %v");
    l->set_level(spdlog::level::info);
    return l;
  }();
  return logger;
}

}  // namespace cspine::log

namespace cspine {

void set_log_level(LogLevel level) {
  static const spdlog::level::level_enum map[] = {spdlog::level::trace, spdlog::level::debug,
                                                  spdlog::level::info,  spdlog::level::warn,
                                                  spdlog::level::err,   spdlog::level::off};
  log::get()->set_level(map[static_cast<int>(level)]);
}
LogLevel log_level() {
  switch (log::get()->level()) {
    case spdlog::level::trace: return LogLevel::trace;
    case spdlog::level::debug: return LogLevel::debug;
    case spdlog::level::info: return LogLevel::info;
    case spdlog::level::warn: return LogLevel::warn;
    case spdlog::level::err:
    case spdlog::level::critical: return LogLevel::error;
    default: return LogLevel::off;
  }
}
void log_info(const std::string& message) { CSPINE_INFO("{}", message); }
void log_warn(const std::string& message) { CSPINE_WARN("{}", message); }
void log_error(const std::string& message) { CSPINE_ERROR("{}", message); }

}  // namespace cspine
