// keel report RUN_DIR... [--out FILE] [--steps A,B] [--prompts N] [--title T]
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.hpp"
#include "common/files.hpp"
#include "report/report.hpp"

namespace fs = std::filesystem;

namespace keel {

Command add_report_command(CLI::App &app) {
  auto *cmd = app.add_subcommand("report", "write one self-contained report.html comparing training runs");
  struct Args {
    std::vector<std::string> runs;
    std::string out = "report.html", markdown;
    ReportOptions opt;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("runs", a->runs, "run directories (each with metrics.jsonl); runs named <variant>-s<seed> are grouped")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("-o,--out", a->out, "the HTML file to write")->capture_default_str();
  cmd->add_option("--steps", a->opt.sample_steps, "evaluation steps whose probe generations are shown (default: first and last)")
      ->delimiter(',');
  cmd->add_option("--prompts", a->opt.sample_prompts, "probe prompts shown per step")->capture_default_str()->check(CLI::Range(1, 100000));
  cmd->add_option("--title", a->opt.title, "page title")->capture_default_str();
  cmd->add_option("--markdown", a->markdown, "also write the final-values table as Markdown to this file ('-': stdout)");
  return {cmd, [a] {
            const auto runs = read_runs(std::vector<fs::path>(a->runs.begin(), a->runs.end()));
            const int charts = write_report(runs, a->out, a->opt);
            std::cout << fmt::format("report: {} ({} runs, {} charts)\n", a->out, runs.size(), charts);
            if (!a->markdown.empty()) {
              const std::string md = render_markdown_table(runs);
              if (a->markdown == "-") {
                std::cout << md;
              } else {
                write_file_atomic(a->markdown, md);
              }
            }
            return 0;
          }};
}

}  // namespace keel
