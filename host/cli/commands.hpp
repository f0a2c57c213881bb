// The subcommands of `keel`: each add_*_command() declares its options on the app and returns the
// function that runs it once parsed. One per <name>_cmd.cpp; main.cpp lists them.
#pragma once
#include <functional>

#include <CLI/CLI.hpp>

namespace keel {

struct Command {
  CLI::App *app;             // the subcommand
  std::function<int()> run;  // returns the exit code; throws UserError (2) or PluginError (1)
};

Command add_plugins_command(CLI::App &app);
Command add_train_command(CLI::App &app);
Command add_init_model_command(CLI::App &app);
Command add_generate_command(CLI::App &app);
Command add_perplexity_command(CLI::App &app);
Command add_eval_command(CLI::App &app);
Command add_tokenize_command(CLI::App &app);
Command add_score_command(CLI::App &app);
Command add_ablate_command(CLI::App &app);
Command add_report_command(CLI::App &app);

}  // namespace keel
