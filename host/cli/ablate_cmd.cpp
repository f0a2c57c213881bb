// keel ablate GRID.toml [--set k=v]... [--plan]: every variant x seed as its own `keel train`
// process, one after another; finished runs skipped, interrupted ones resumed; then the report.
#include <spawn.h>
#include <sys/wait.h>

#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "ablate/ablate.hpp"
#include "cli/commands.hpp"
#include "common/errors.hpp"
#include "report/report.hpp"

extern char **environ;
namespace fs = std::filesystem;

namespace keel {
namespace {

bool has_checkpoint(const fs::path &run_dir) {
  if (!fs::is_directory(run_dir / "checkpoints")) return false;
  for (const auto &e : fs::directory_iterator(run_dir / "checkpoints"))
    if (fs::exists(e.path() / "trainer_state.json")) return true;
  return false;
}

// Runs `keel train ...` in a child process; returns its exit status (128 + signal if killed).
// /proc/self/exe is this very binary even if a rebuild replaced the file meanwhile, so every run
// of a grid uses one build.
int run_child(const std::vector<std::string> &args) {
  std::vector<char *> argv;
  std::string self = "/proc/self/exe", name = "keel";
  argv.push_back(name.data());
  for (const auto &s : args) argv.push_back(const_cast<char *>(s.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  if (posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), environ) != 0)
    throw std::runtime_error("cannot start " + self);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

Command add_ablate_command(CLI::App &app) {
  auto *cmd = app.add_subcommand("ablate", "run a grid of pipeline variants x seeds, then write the comparison report");
  struct Args {
    std::string grid;
    std::vector<std::string> sets, plugin_dirs;
    std::string output_dir;
    bool plan = false, no_progress = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("grid", a->grid, "the grid TOML ([grid] base, output_dir, seeds, set; [[variant]] name, base, remove, add, set)")
      ->required();
  cmd->add_option("--set", a->sets, "key=value applied to every run (after the grid's own)");
  cmd->add_option("--plugin-dir", a->plugin_dirs, "extra plugin directory, passed to each run");
  cmd->add_option("--output-dir", a->output_dir, "where the runs and the report go (default: the grid's output_dir)");
  cmd->add_flag("--plan", a->plan, "write the variant pipelines and print the runs, without training");
  cmd->add_flag("--no-progress", a->no_progress, "plain log lines in the runs");
  return {cmd, [a] {
            AblationPlan plan = plan_ablation(a->grid, a->sets, a->output_dir);
            const size_t n = plan.runs.size();
            std::vector<fs::path> dirs;
            std::vector<std::string> failed;
            for (size_t i = 0; i < n; ++i) {
              const AblationRun &r = plan.runs[i];
              std::vector<std::string> args = {"train", r.pipeline.string()};
              for (const auto &s : r.sets) args.insert(args.end(), {"--set", s});
              for (const auto &d : a->plugin_dirs) args.insert(args.end(), {"--plugin-dir", d});
              if (a->no_progress) args.push_back("--no-progress");
              const std::string head = fmt::format("[{}/{}] {}", i + 1, n, r.name);
              if (run_finished(r.run_dir)) {
                std::cout << head << ": finished before, skipped\n";
                dirs.push_back(r.run_dir);
                continue;
              }
              if (has_checkpoint(r.run_dir)) {
                args.push_back("--resume");
              } else if (fs::exists(r.run_dir)) {
                fs::remove_all(r.run_dir);  // started but never checkpointed: nothing to keep
              }
              std::string line = "keel";
              for (const auto &s : args) line += " " + s;
              std::cout << head << ": " << line << std::endl;
              if (a->plan) continue;
              const int rc = run_child(args);
              if (rc != 0) {
                std::cout << head << ": failed (exit " << rc << "); continuing with the others" << std::endl;
                failed.push_back(r.name);
              }
              if (fs::exists(r.run_dir / "metrics.jsonl")) dirs.push_back(r.run_dir);
            }
            if (a->plan) return 0;
            if (!dirs.empty()) {
              ReportOptions opt;
              opt.title = "keel ablation: " + fs::path(a->grid).filename().string();
              const fs::path out = plan.output_dir / "report.html";
              write_report(read_runs(dirs), out, opt);
              std::cout << fmt::format("report: {}\n", out.string());
            }
            if (!failed.empty()) {
              std::cout << fmt::format("{} of {} runs failed: {}\n", failed.size(), n, fmt::join(failed, ", "));
              return 1;
            }
            return 0;
          }};
}

}  // namespace keel
