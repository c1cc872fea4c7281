// Orderly stops for batch commands: SIGINT/SIGTERM set a flag that the work checks between items, so that
// finished items stay saved and half-written ones are cleaned up. A second signal stops the process at once.
#pragma once

namespace cspine {

// Installs the handlers (batch commands only: other commands keep the default, immediate stop).
void install_interrupt_handlers();
bool interrupted();
// Throws InterruptedError when a signal has arrived.
void throw_if_interrupted();

}  // namespace cspine
