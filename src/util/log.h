// Project logging front: spdlog stays out of public headers; every unit logs through this.
#pragma once
#include <spdlog/spdlog.h>

namespace cspine::log {
std::shared_ptr<spdlog::logger> get();
}  // namespace cspine::log

#define CSPINE_TRACE(...) ::cspine::log::get()->trace(__VA_ARGS__)
#define CSPINE_DEBUG(...) ::cspine::log::get()->debug(__VA_ARGS__)
#define CSPINE_INFO(...) ::cspine::log::get()->info(__VA_ARGS__)
#define CSPINE_WARN(...) ::cspine::log::get()->warn(__VA_ARGS__)
#define CSPINE_ERROR(...) ::cspine::log::get()->error(__VA_ARGS__)
