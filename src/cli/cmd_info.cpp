#include <iostream>

#include "cli/commands.h"
#include "cspine/exit_codes.h"
#include "cspine/runtime.h"

namespace cspine::cli {

void add_info(CLI::App& app, Runner& run) {
  auto* info = app.add_subcommand("info", "Print the versions of cspine and its libraries, and whether CUDA is usable");
  info->callback([&run] {
    run = [] {
      std::cout << build_info();
      return 0;
    };
  });
  auto* codes = app.add_subcommand("exit-codes", "Print the table of exit codes (Markdown)");
  codes->callback([&run] {
    run = [] {
      std::cout << "| code | name | meaning |\n| --- | --- | --- |\n";
      for (const auto& c : kExitCodes) std::cout << "| " << to_int(c.code) << " | " << c.name << " | " << c.meaning << " |\n";
      return 0;
    };
  });
}

}  // namespace cspine::cli
