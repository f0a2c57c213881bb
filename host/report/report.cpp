// The report is plain string building: an SVG chart is axes, a polyline per run, translucent
// rectangles where an alarm was on, and triangles where a remedy fired.
#include "report/report.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <fstream>
#include <functional>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "common/errors.hpp"
#include "common/files.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace keel {
namespace {

std::string esc(const std::string &s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  return out;
}

// Colour-blind-safe palette (Okabe-Ito), one colour per variant.
const char *kPalette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"};

std::string fmt_num(double v) {
  if (v == 0) return "0";
  const double a = std::fabs(v);
  if (a >= 1e4 || a < 1e-3) return fmt::format("{:.2e}", v);
  return fmt::format("{:.4g}", v);
}

// About n round tick values covering [lo, hi].
std::vector<double> ticks(double lo, double hi, int n) {
  const double span = hi - lo;
  const double raw = span / n, mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  std::vector<double> out;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push_back(std::fabs(t) < step * 1e-9 ? 0 : t);
  return out;
}

struct Line {
  std::string label, color, dash;
  std::vector<std::pair<double, double>> pts;
  std::vector<std::pair<double, double>> alarm_bands;  // [from, to] steps
  std::vector<RunRecord::Event> markers;
};

std::string svg_chart(const std::string &title, const std::vector<Line> &lines, std::optional<double> threshold,
                      const std::string &threshold_label) {
  const double W = 440, H = 250, L = 58, R = 12, T = 26, B = 34;
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (const auto &l : lines)
    for (auto [x, y] : l.pts) {
      if (!std::isfinite(y)) continue;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  if (x0 > x1) return {};
  if (threshold) y0 = std::min(y0, *threshold), y1 = std::max(y1, *threshold);
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y0 -= std::max(1e-9, std::fabs(y0) * 0.1), y1 += std::max(1e-9, std::fabs(y1) * 0.1);
  const double pad = (y1 - y0) * 0.06;
  y0 -= pad, y1 += pad;
  auto X = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto Y = [&](double y) { return T + (y1 - y) / (y1 - y0) * (H - T - B); };
  std::ostringstream s;
  s << fmt::format(R"(<svg class="chart" viewBox="0 0 {} {}" width="{}" height="{}" role="img" aria-label="{}">)", W, H, W,
                   H, esc(title));
  s << fmt::format(R"(<text x="{}" y="16" class="ct">{}</text>)", L, esc(title));
  for (double t : ticks(y0, y1, 5))
    s << fmt::format(R"(<line x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" class="grid"/><text x="{:.1f}" y="{:.1f}" class="yt">{}</text>)",
                     L, W - R, Y(t), Y(t), L - 4, Y(t) + 3, fmt_num(t));
  for (double t : ticks(x0, x1, 6))
    s << fmt::format(R"(<text x="{:.1f}" y="{:.1f}" class="xt">{}</text>)", X(t), H - B + 14, fmt_num(t));
  s << fmt::format(R"(<text x="{:.1f}" y="{:.1f}" class="xl">step</text>)", (L + W - R) / 2, H - 4);
  s << fmt::format(R"(<rect x="{}" y="{}" width="{}" height="{}" class="frame"/>)", L, T, W - L - R, H - T - B);
  for (const auto &l : lines)
    for (auto [a, b] : l.alarm_bands)
      s << fmt::format(R"(<rect x="{:.1f}" y="{}" width="{:.1f}" height="{}" fill="{}" class="alarm"><title>{}: alarm, steps {}-{}</title></rect>)",
                       X(a), T, std::max(2.0, X(b) - X(a)), H - T - B, l.color, esc(l.label), a, b);
  if (threshold)
    s << fmt::format(R"(<line x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}" class="thr"/><text x="{}" y="{:.1f}" class="thrt">{}</text>)", L,
                     W - R, Y(*threshold), Y(*threshold), W - R - 2, Y(*threshold) - 3, esc(threshold_label));
  for (const auto &l : lines) {
    std::string d;
    bool pen = false;
    for (auto [x, y] : l.pts) {
      if (!std::isfinite(y)) {
        pen = false;
        continue;
      }
      d += fmt::format("{}{:.1f},{:.1f} ", pen ? "L" : "M", X(x), Y(y));
      pen = true;
    }
    s << fmt::format(R"(<path d="{}" stroke="{}" stroke-dasharray="{}" class="ln"><title>{}</title></path>)", d, l.color,
                     l.dash, esc(l.label));
    if (l.pts.size() <= 40)
      for (auto [x, y] : l.pts)
        if (std::isfinite(y))
          s << fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="2.2" fill="{}"><title>{} step {}: {}</title></circle>)", X(x),
                           Y(y), l.color, esc(l.label), x, fmt_num(y));
    for (const auto &m : l.markers) {
      const double mx = X(m.step);
      s << fmt::format(R"(<path d="M{:.1f},{} l-5,-9 h10 z" fill="{}" class="mark"><title>{} step {}: {}</title></path>)", mx,
                       T, l.color, esc(l.label), m.step, esc(m.label));
    }
  }
  s << "</svg>";
  return s.str();
}

double mean(const std::vector<double> &v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}
double sd(const std::vector<double> &v) {
  if (v.size() < 2) return 0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

std::vector<json> read_jsonl(const fs::path &file) {
  std::vector<json> rows;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      rows.push_back(json::parse(line));
    } catch (const json::exception &) {  // a line cut short by a kill: the rest is still useful
    }
  }
  return rows;
}

}  // namespace

std::vector<std::string> variants(const std::vector<RunRecord> &runs) {
  std::vector<std::string> groups;
  for (const auto &r : runs)
    if (std::find(groups.begin(), groups.end(), r.group) == groups.end()) groups.push_back(r.group);
  return groups;
}

// Every eval value without a '.' (side values stay in metrics.jsonl) and every held-out loss
// eval_loss.NAME (what a run learned and forgot), in first-seen order.
std::vector<std::string> metric_names(const std::vector<RunRecord> &runs) {
  auto shown = [](const std::string &k) {
    const bool held_out = k.rfind("eval_loss.", 0) == 0 && k.size() > 4 && k.compare(k.size() - 4, 4, ".ppl") != 0;
    return k.find('.') == std::string::npos || held_out;
  };
  std::vector<std::string> metrics;
  for (const auto &r : runs)
    for (const auto &e : r.evals)
      for (auto it = e.begin(); it != e.end(); ++it)
        if (it.value().is_number() && shown(it.key()) &&
            !std::set<std::string>{"step", "temperature", "eval_seconds"}.count(it.key()) &&
            std::find(metrics.begin(), metrics.end(), it.key()) == metrics.end())
          metrics.push_back(it.key());
  return metrics;
}

FinalTable final_table(const std::vector<RunRecord> &runs) {
  FinalTable t;
  const auto metrics = metric_names(runs);
  t.header = {"variant", "runs", "final loss"};
  t.header.insert(t.header.end(), metrics.begin(), metrics.end());
  for (const char *k : {"alarms", "remedies", "rollbacks", "steps"}) t.header.push_back(k);
  for (const auto &g : variants(runs)) {
    std::vector<const RunRecord *> rs;
    for (const auto &r : runs)
      if (r.group == g) rs.push_back(&r);
    FinalTable::Row row{g, {}};
    auto cell = [&](const std::function<std::optional<double>(const RunRecord &)> &get, const std::string &metric = "") {
      std::vector<double> v;
      bool alarm = false;
      for (const auto *r : rs)
        if (auto x = get(*r)) {
          v.push_back(*x);
          if (!metric.empty() && !r->evals.empty())
            for (const auto &a : r->evals.back().value("alarms", json::array())) alarm |= a == metric;
        }
      if (v.empty()) return row.cells.push_back({"–", false});
      std::string txt = rs.size() > 1 ? fmt::format("{} ± {}", fmt_num(mean(v)), fmt_num(sd(v))) : fmt_num(v[0]);
      if (v.size() < rs.size()) txt += fmt::format(" ({} of {})", v.size(), rs.size());
      row.cells.push_back({txt, alarm});
    };
    row.cells.push_back({std::to_string(rs.size()), false});
    cell([](const RunRecord &r) -> std::optional<double> {
      if (r.train.empty()) return std::nullopt;
      return r.train.back()["loss"].get<double>();
    });
    for (const auto &m : metrics)
      cell(
          [&](const RunRecord &r) -> std::optional<double> {
            if (r.evals.empty() || !r.evals.back().contains(m) || !r.evals.back()[m].is_number()) return std::nullopt;
            return r.evals.back()[m].get<double>();
          },
          m);
    for (const char *k : {"alarms", "remedies", "rollbacks", "steps"})
      cell([&](const RunRecord &r) -> std::optional<double> {
        if (r.summary.is_null() || !r.summary.contains(k)) return std::nullopt;
        return r.summary[k].get<double>();
      });
    t.rows.push_back(std::move(row));
  }
  return t;
}

std::string render_markdown_table(const std::vector<RunRecord> &runs) {
  const FinalTable t = final_table(runs);
  std::string md = "| " + fmt::format("{}", fmt::join(t.header, " | ")) + " |\n|";
  for (size_t i = 0; i < t.header.size(); ++i) md += i == 0 ? "---|" : "---:|";
  md += "\n";
  for (const auto &r : t.rows) {
    md += "| " + r.variant;
    for (const auto &c : r.cells) md += " | " + (c.alarm ? "**" + c.text + "**" : c.text);
    md += " |\n";
  }
  return md;
}

RunRecord read_run(const fs::path &dir) {
  RunRecord r;
  r.dir = dir;
  r.name = fs::path(dir).lexically_normal().filename().string();
  if (r.name.empty()) r.name = fs::path(dir).lexically_normal().parent_path().filename().string();
  static const std::regex seed_suffix("^(.*)-s[0-9]+$");
  std::smatch m;
  r.group = std::regex_match(r.name, m, seed_suffix) ? m[1].str() : r.name;
  if (!fs::exists(dir / "metrics.jsonl"))
    throw UserError(fmt::format("{}: no metrics.jsonl (is it a keel run directory?)", dir.string()));
  for (json &row : read_jsonl(dir / "metrics.jsonl")) {
    if (row.contains("summary")) {
      r.summary = row;
      continue;
    }
    const int64_t step = row.value("step", int64_t{0});
    if (row.contains("remedies"))
      for (const auto &f : row["remedies"])
        r.remedies.push_back({step, fmt::format("{} (alarm: {})", f.value("remedy", "?"), f.value("alarm", "?"))});
    if (row.contains("rollback"))
      r.rollbacks.push_back({step, fmt::format("rollback to step {}", row["rollback"].value("to", int64_t{0}))});
    // A resumed run logs again from its checkpoint's step: the later rows replace the earlier.
    auto add = [&](std::vector<json> &rows) {
      while (!rows.empty() && rows.back()["step"].get<int64_t>() >= step) rows.pop_back();
      rows.push_back(std::move(row));
    };
    if (row.value("eval", false))
      add(r.evals);
    else if (row.contains("loss"))
      add(r.train);
  }
  // Alarm thresholds, from the resolved config the trainer wrote: metric = plugin name.
  if (fs::exists(dir / "config.toml")) {
    try {
      toml::table cfg = toml::parse_file((dir / "config.toml").string());
      if (auto *arr = cfg["pipeline"].as_array())
        for (auto &node : *arr)
          if (auto *t = node.as_table()) {
            const std::string plugin = (*t)["plugin"].value_or(std::string());
            if (auto v = (*t)["alarm_below"].value<double>()) r.alarm_below[plugin] = *v;
            if (auto v = (*t)["alarm_above"].value<double>()) r.alarm_above[plugin] = *v;
          }
    } catch (const toml::parse_error &) {
    }
  }
  if (fs::is_directory(dir / "samples"))
    for (const auto &e : fs::directory_iterator(dir / "samples")) {
      const std::string f = e.path().filename().string();
      if (f.rfind("step-", 0) == 0 && e.path().extension() == ".jsonl")
        r.samples[std::stoll(f.substr(5, f.size() - 11))] = e.path();
    }
  return r;
}

std::string render_report(const std::vector<RunRecord> &runs, const ReportOptions &opt) {
  // Variants in first-seen order, each with its colour; seeds of a variant differ by dash.
  const std::vector<std::string> groups = variants(runs);
  auto colour = [&](const std::string &g) {
    return kPalette[(std::find(groups.begin(), groups.end(), g) - groups.begin()) % std::size(kPalette)];
  };
  std::map<std::string, int> seen;
  std::vector<std::string> dashes;
  for (const auto &r : runs) {
    static const char *kDash[] = {"", "6 3", "2 3", "8 3 2 3"};
    dashes.push_back(kDash[seen[r.group]++ % 4]);
  }

  const std::vector<std::string> metrics = metric_names(runs);

  std::ostringstream h;
  std::time_t now = std::time(nullptr);
  char when[64];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  h << "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>" << esc(opt.title) << "</title><style>"
    << "body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}"
       "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}"
       ".sub{color:#666}.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{background:#fff;border:1px solid #e4e4e4}"
       ".ct{font-weight:600;font-size:13px}.yt{font-size:10px;text-anchor:end;fill:#555}.xt{font-size:10px;text-anchor:middle;fill:#555}"
       ".xl{font-size:10px;text-anchor:middle;fill:#777}.grid{stroke:#eee}.frame{fill:none;stroke:#ccc}"
       ".ln{fill:none;stroke-width:1.7}.alarm{opacity:.10}.thr{stroke:#b00;stroke-dasharray:4 3}"
       ".thrt{font-size:10px;fill:#b00;text-anchor:end}.legend span{display:inline-block;margin-right:16px}"
       ".sw{display:inline-block;width:18px;height:4px;vertical-align:middle;margin-right:5px}"
       "table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:left}"
       "th{background:#f5f5f5}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
       ".al{color:#b00;font-weight:600}.gen{font-size:12.5px;max-width:420px;white-space:pre-wrap}</style></head><body>";
  h << "<h1>" << esc(opt.title) << "</h1><div class=\"sub\">" << runs.size() << " runs, " << groups.size()
    << " variants; generated " << when << " by keel report. Shaded spans: an alarm was on; triangles: a remedy fired "
       "or a rollback happened; dashed red line: the alarm threshold.</div>";
  h << "<p class=\"legend\">";
  for (size_t i = 0; i < runs.size(); ++i)
    h << fmt::format(R"(<span><svg width="22" height="6"><line x1="0" x2="22" y1="3" y2="3" stroke="{}" stroke-width="3" stroke-dasharray="{}"/></svg> {}</span>)",
                     colour(runs[i].group), dashes[i], esc(runs[i].name));
  h << "</p>";

  // ---- curves
  h << "<h2>Curves</h2><div class=\"charts\">";
  auto train_chart = [&](const std::string &key, const std::string &title) {
    std::vector<Line> lines;
    for (size_t i = 0; i < runs.size(); ++i) {
      Line l{runs[i].name, colour(runs[i].group), dashes[i], {}, {}, {}};
      for (const auto &row : runs[i].train)
        if (row.contains(key) && row[key].is_number()) l.pts.emplace_back(row["step"].get<double>(), row[key].get<double>());
      if (key == "lr") {  // remedies that change the LR show where they fired
        l.markers = runs[i].remedies;
        l.markers.insert(l.markers.end(), runs[i].rollbacks.begin(), runs[i].rollbacks.end());
      }
      lines.push_back(std::move(l));
    }
    std::string svg = svg_chart(title, lines, std::nullopt, "");
    h << svg;
  };
  train_chart("loss", "training loss");
  train_chart("lr", "learning rate");
  for (const auto &metric : metrics) {
    std::vector<Line> lines;
    std::optional<double> thr;
    std::string thr_label;
    for (size_t i = 0; i < runs.size(); ++i) {
      const RunRecord &r = runs[i];
      Line l{r.name, colour(r.group), dashes[i], {}, {}, r.remedies};
      l.markers.insert(l.markers.end(), r.rollbacks.begin(), r.rollbacks.end());
      std::optional<double> on;
      double last = 0;
      for (const auto &e : r.evals) {
        if (!e.contains(metric)) continue;
        const double step = e["step"].get<double>();
        l.pts.emplace_back(step, e[metric].is_number() ? e[metric].get<double>() : NAN);
        bool alarm = false;
        for (const auto &a : e.value("alarms", json::array())) alarm |= a == metric;
        if (alarm && !on) on = step;
        if (!alarm && on) l.alarm_bands.emplace_back(*on, step), on.reset();
        last = step;
      }
      if (on) l.alarm_bands.emplace_back(*on, last);
      if (!thr && r.alarm_below.count(metric)) thr = r.alarm_below.at(metric), thr_label = "alarm below";
      if (!thr && r.alarm_above.count(metric)) thr = r.alarm_above.at(metric), thr_label = "alarm above";
      lines.push_back(std::move(l));
    }
    std::string svg = svg_chart(metric, lines, thr, thr_label);
    h << svg;
  }
  h << "</div>";

  // ---- final values, mean ± sd over the runs of each variant
  const FinalTable table = final_table(runs);
  h << "<h2>Final values</h2><table><tr>";
  for (const auto &c : table.header) h << "<th>" << esc(c) << "</th>";
  h << "</tr>";
  for (const auto &row : table.rows) {
    h << "<tr><td><span class=\"sw\" style=\"background:" << colour(row.variant) << "\"></span>" << esc(row.variant) << "</td>";
    for (const auto &c : row.cells) h << "<td class=\"n" << (c.alarm ? " al" : "") << "\">" << esc(c.text) << "</td>";
    h << "</tr>";
  }
  h << "</table><div class=\"sub\">Values at each run's last evaluation (loss: last logged step); mean ± sample sd "
       "over the runs of a variant (its seeds). Red: the alarm was on at the end. A variant with a \"(k of n)\" note "
       "has runs that did not reach that value (stopped or not finished).</div>";

  // ---- probe generations side by side
  std::set<int64_t> all_steps;
  for (const auto &r : runs)
    for (const auto &[s, _] : r.samples) all_steps.insert(s);
  std::vector<int64_t> steps = opt.sample_steps;
  if (steps.empty() && !all_steps.empty()) {
    steps.push_back(*all_steps.begin());
    if (all_steps.size() > 1) steps.push_back(*all_steps.rbegin());
  }
  h << "<h2>Probe generations</h2>";
  if (steps.empty()) h << "<p class=\"sub\">No samples: the runs had no evaluation.</p>";
  for (int64_t step : steps) {
    std::vector<const RunRecord *> cols;  // the first run of each variant that has this step
    for (const auto &g : groups)
      for (const auto &r : runs)
        if (r.group == g && r.samples.count(step)) {
          cols.push_back(&r);
          break;
        }
    if (cols.empty()) continue;
    std::vector<std::vector<json>> rows;
    for (const auto *r : cols) rows.push_back(read_jsonl(r->samples.at(step)));
    h << "<h3>step " << step << "</h3><table><tr><th>probe prompt</th>";
    for (const auto *r : cols) h << "<th>" << esc(r->name) << "</th>";
    h << "</tr>";
    const size_t n = std::min<size_t>(static_cast<size_t>(opt.sample_prompts), rows.front().size());
    for (size_t i = 0; i < n; ++i) {
      std::string prompt = rows.front()[i].value("prompt", "");
      // Show the user's words, not the chat markup around them.
      static const std::regex markup("<\\|[^|]*\\|>(user|assistant|system)?\\n?");
      prompt = std::regex_replace(prompt, markup, "");
      h << "<tr><td class=\"gen\">" << esc(prompt) << "</td>";
      for (const auto &rr : rows) {
        std::string t = i < rr.size() ? rr[i].value("text", "") : "";
        if (t.size() > 400) t = t.substr(0, 400) + "…";
        h << "<td class=\"gen\">" << esc(t) << "</td>";
      }
      h << "</tr>";
    }
    h << "</table>";
  }
  h << "<h2>Runs</h2><ul>";
  for (const auto &r : runs)
    h << "<li>" << esc(r.name) << ": " << esc(r.dir.string()) << (r.summary.is_null() ? " (not finished)" : "") << "</li>";
  h << "</ul></body></html>\n";
  return h.str();
}

std::vector<RunRecord> read_runs(const std::vector<fs::path> &run_dirs) {
  std::vector<RunRecord> runs;
  for (const auto &d : run_dirs) runs.push_back(read_run(d));
  return runs;
}

int write_report(const std::vector<RunRecord> &runs, const fs::path &out, const ReportOptions &opt) {
  const std::string html = render_report(runs, opt);
  if (out.has_parent_path()) fs::create_directories(out.parent_path());
  write_file_atomic(out, html);
  size_t charts = 0;
  for (size_t p = 0; (p = html.find("class=\"chart\"", p)) != std::string::npos; ++p) ++charts;
  return static_cast<int>(charts);
}

}  // namespace keel
