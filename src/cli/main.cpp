// cspine: parse the command line, run one subcommand, map the outcome to a documented exit code.
#include <CLI/CLI.hpp>

#include <iostream>

#include "cli/commands.h"
#include "cspine/error.h"
#include "cspine/exit_codes.h"
#include "cspine/runtime.h"

int main(int argc, char** argv) {
  using namespace cspine;
  CLI::App app{"cspine: cervical spine fracture detection on CT, from DICOM folders to per-vertebra probabilities"};
  app.set_version_flag("--version", std::string("cspine ") + CSPINE_VERSION);
  app.require_subcommand(1);
  bool verbose = false, quiet = false;
  app.add_flag("-v,--verbose", verbose, "Debug logging on stderr");
  app.add_flag("-q,--quiet", quiet, "Only errors on stderr");
  app.fallthrough();  // -v/-q also after the subcommand: `cspine predict DIR -o F -q`

  cli::Runner run;
  cli::add_inspect(app, run);
  cli::add_convert(app, run);
  cli::add_evaluate(app, run);
  cli::add_preprocess(app, run);
  cli::add_predict(app, run);
  cli::add_plan(app, run);
  cli::add_merge(app, run);
  cli::add_info(app, run);
  cli::add_synth(app, run);

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return to_int(ExitCode::usage);
  }
  set_log_level(verbose ? LogLevel::debug : quiet ? LogLevel::error : LogLevel::info);
  try {
    return run ? run() : to_int(ExitCode::usage);
  } catch (const Error& e) {
    log_error(e.what());
    return to_int(e.code());
  } catch (const std::exception& e) {
    log_error(std::string("internal error: ") + e.what());
    return to_int(ExitCode::internal);
  }
}
