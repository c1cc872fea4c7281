// Each subcommand registers itself on the CLI11 app and leaves a runner; main() runs the one chosen.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>

namespace cspine::cli {

using Runner = std::function<int()>;

void add_inspect(CLI::App& app, Runner& run);
void add_convert(CLI::App& app, Runner& run);
void add_info(CLI::App& app, Runner& run);
void add_synth(CLI::App& app, Runner& run);
void add_evaluate(CLI::App& app, Runner& run);
void add_preprocess(CLI::App& app, Runner& run);
void add_predict(CLI::App& app, Runner& run);
void add_plan(CLI::App& app, Runner& run);   // cmd_cluster.cpp
void add_merge(CLI::App& app, Runner& run);  // cmd_cluster.cpp

}  // namespace cspine::cli
