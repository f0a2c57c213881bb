// keel — the command line (ARCHITECTURE.md §4). Each subcommand lives in its own <name>_cmd.cpp and
// is listed once below. Exit codes: 0 success, 2 bad input or configuration (one line on stderr),
// 1 internal or plugin failure.
#include <cstdio>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "common/errors.hpp"
#include "logging/log.hpp"

int main(int argc, char **argv) {
  using namespace keel;
  CLI::App app{"keel: supervised fine-tuning that keeps small models from response collapse"};
  app.require_subcommand(1);
  int verbose = 0;
  app.add_flag("-v,--verbose", verbose, "debug logging (includes the plugin hook trace)");

  const std::vector<Command> commands = {
      add_plugins_command(app),
      add_train_command(app),
      add_init_model_command(app),
      add_generate_command(app),
      add_perplexity_command(app),
      add_eval_command(app),
      add_tokenize_command(app),
      add_score_command(app),
      add_ablate_command(app),
      add_report_command(app),
  };

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::fprintf(stderr, "keel: %s (see keel %s --help)\n", e.what(),
                 app.get_subcommands().empty() ? "" : app.get_subcommands().front()->get_name().c_str());
    return 2;
  }
  logging::init(verbose);
  try {
    for (const Command &c : commands)
      if (c.app->parsed()) return c.run();
  } catch (const UserError &e) {
    std::fprintf(stderr, "keel: %s\n", e.what());
    return 2;
  } catch (const PluginError &e) {
    std::fprintf(stderr, "keel: %s\n", e.what());
    return 1;
  } catch (const GroupError &e) {
    std::fprintf(stderr, "keel: %s\n", e.what());
    return 1;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "keel: internal error: %s\n", e.what());
    return 1;
  }
  return 0;
}
