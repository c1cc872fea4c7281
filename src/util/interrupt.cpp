#include "util/interrupt.h"

#include <csignal>

#include "cspine/error.h"

namespace cspine {

namespace {
volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_signal(int sig) {
  if (g_signal != 0) {  // second signal: stop now
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_signal = sig;
}
}  // namespace

void install_interrupt_handlers() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

bool interrupted() {
  return g_signal != 0;
}

void throw_if_interrupted() {
  if (g_signal != 0)
    throw InterruptedError(std::string("interrupted by ") + (g_signal == SIGINT ? "SIGINT" : "SIGTERM"));
}

}  // namespace cspine
