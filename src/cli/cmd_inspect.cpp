#include <iostream>

#include "cli/commands.h"
#include "cspine/dicom.h"
#include "cspine/inspect.h"

namespace cspine::cli {

void add_inspect(CLI::App& app, Runner& run) {
  struct Options {
    std::string path;
    bool json = false;
    ScanOptions scan;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("inspect", "List the studies and series under PATH, the series chosen for scoring and "
                                            "any DICOM anomalies (headers only, nothing is decoded)");
  cmd->add_option("path", opt->path, "A DICOM file, a study folder, or a folder of study folders")->required();
  cmd->add_flag("--json", opt->json, "Print one JSON document on stdout instead of text");
  cmd->add_option("--threads", opt->scan.threads, "Threads for reading headers (0: all cores)")->check(CLI::NonNegativeNumber);
  cmd->callback([opt, &run] {
    run = [opt] {
      const StudyIndex index = scan_studies(opt->path, opt->scan);
      std::cout << (opt->json ? inspect_json(index) : inspect_text(index));
      std::cout.flush();
      return 0;
    };
  });
}

}  // namespace cspine::cli
