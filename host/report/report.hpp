// keel report: one self-contained report.html (inline SVG and CSS, no script, no network) that
// compares training runs: curves per metric with alarm bands and remedy markers, a table of final
// values with mean ± sd over seeds, and the probe generations side by side.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace keel {

// What a run directory holds that the report shows (read from metrics.jsonl, config.toml, samples/).
struct RunRecord {
  std::string name;   // the run directory's name
  std::string group;  // the name without a trailing "-s<seed>": runs of one variant share it
  std::filesystem::path dir;
  std::vector<nlohmann::json> train;  // rows with "loss"
  std::vector<nlohmann::json> evals;  // rows with "eval": true
  struct Event {
    int64_t step;
    std::string label;
  };
  std::vector<Event> remedies, rollbacks;
  nlohmann::json summary;                            // the closing row; null if the run did not finish
  std::map<std::string, double> alarm_below, alarm_above;  // per metric, from the run's config.toml
  std::map<int64_t, std::filesystem::path> samples;  // eval step -> samples/step-NNNNNN.jsonl
};

// Reads one run directory; throws UserError when it has no metrics.jsonl.
RunRecord read_run(const std::filesystem::path &dir);

struct ReportOptions {
  std::string title = "keel report";
  std::vector<int64_t> sample_steps;  // empty: the first and the last evaluation
  int sample_prompts = 8;             // probe prompts shown per step
};

std::string render_report(const std::vector<RunRecord> &runs, const ReportOptions &opt);

// Variants (run groups) in first-seen order; metric names (no side values) in first-seen order.
std::vector<std::string> variants(const std::vector<RunRecord> &runs);
std::vector<std::string> metric_names(const std::vector<RunRecord> &runs);

// The table of final values: per variant, mean ± sample sd over its runs (its seeds).
struct FinalTable {
  struct Cell {
    std::string text;
    bool alarm;  // the metric's alarm was on at a run's last evaluation
  };
  struct Row {
    std::string variant;
    std::vector<Cell> cells;  // runs, final loss, each metric, alarms, remedies, rollbacks, steps
  };
  std::vector<std::string> header;
  std::vector<Row> rows;
};
FinalTable final_table(const std::vector<RunRecord> &runs);
std::string render_markdown_table(const std::vector<RunRecord> &runs);  // alarms in **bold**

std::vector<RunRecord> read_runs(const std::vector<std::filesystem::path> &run_dirs);

// Renders and writes `out` atomically. Returns the number of charts drawn.
int write_report(const std::vector<RunRecord> &runs, const std::filesystem::path &out, const ReportOptions &opt);

}  // namespace keel
