#pragma once
// A self-contained SVG chart of a training run (no scripts, fonts or other external resources), rewritten
// atomically as training runs so it can be opened in a browser at any time. Torch-free.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "grpo/detail/atomic_file.hpp"
#include "grpo/train/logging.hpp"

namespace grpo {

/// One panel of the chart: a title and the metrics drawn in it against the step.
struct ChartPanel {
  /// Panel title.
  std::string title;
  /// Metric names of MetricRecord::metrics, one line each (a metric with no finite value is left out).
  std::vector<std::string> metrics;
  /// Legend labels, one per metric (empty: the metric names).
  std::vector<std::string> labels;
  /// Text shown while the panel has no data.
  std::string empty_text = "no data yet";
};

/// The default 2 x 2 layout: reward (train, eval reward and eval accuracy when logged), KL, completion length,
/// learning rate.
inline std::vector<ChartPanel> default_chart_panels() {
  return {
      {"Reward", {"reward", "eval_reward", "eval_accuracy"}, {"train reward", "eval reward", "eval accuracy"}},
      {"KL to reference", {"kl"}, {"kl"}, "no data (KL is logged when beta != 0)"},
      {"Completion length (tokens)", {"completions/mean_length", "completions/max_length"}, {"mean", "max"}},
      {"Learning rate", {"learning_rate"}, {"learning_rate"}},
  };
}

namespace detail {

inline std::string xml_escape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

inline std::string svg_number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f", value);
  return buffer;
}

// Tick label: short and exact enough ("0.25", "1e-06", "1200").
inline std::string tick_label(double value, double step) {
  if (std::abs(value) < step * 1e-6) value = 0.0;
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.4g", value);
  return buffer;
}

// A "nice" tick spacing (1, 2 or 5 times a power of ten) giving about `target` intervals over `range`.
inline double nice_step(double range, int target) {
  const double raw = range / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double fraction = raw / magnitude;
  const double nice = fraction < 1.5 ? 1.0 : fraction < 3.0 ? 2.0 : fraction < 7.0 ? 5.0 : 10.0;
  return nice * magnitude;
}

struct Axis {
  double low = 0, high = 1, step = 0.25;
};

// Expands [low, high] to tick boundaries; a flat or empty range gets a sensible width.
inline Axis make_axis(double low, double high, int target_ticks, double min_step = 0.0) {
  if (!(low <= high)) {
    low = 0;
    high = 1;
  }
  if (high - low < 1e-12 * std::max(1.0, std::abs(high))) {
    const double pad = low == 0 ? 1.0 : std::abs(low) * 0.1;
    low -= pad;
    high += pad;
  }
  Axis axis;
  axis.step = std::max(min_step, nice_step(high - low, target_ticks));
  axis.low = std::floor(low / axis.step + 1e-9) * axis.step;
  axis.high = std::ceil(high / axis.step - 1e-9) * axis.step;
  return axis;
}

inline const char* series_color(std::size_t i) {
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"};
  return colors[i % (sizeof colors / sizeof colors[0])];
}

// (step, value) points of one metric, non-finite values skipped.
inline std::vector<std::pair<double, double>> metric_points(const std::vector<MetricRecord>& history,
                                                            const std::string& name) {
  std::vector<std::pair<double, double>> points;
  for (const auto& record : history) {
    const auto it = record.metrics.find(name);
    if (it != record.metrics.end() && std::isfinite(it->second)) {
      points.emplace_back(static_cast<double>(record.step), it->second);
    }
  }
  return points;
}

// One panel at (x, y) of size (w, h).
inline std::string render_panel(const ChartPanel& panel, const std::vector<MetricRecord>& history, double x, double y,
                                double w, double h, double step_low, double step_high) {
  const double left = x + 62, right = x + w - 26, top = y + 34, bottom = y + h - 40;
  std::string svg;
  svg += "<rect x=\"" + svg_number(x + 4) + "\" y=\"" + svg_number(y + 4) + "\" width=\"" + svg_number(w - 8) +
         "\" height=\"" + svg_number(h - 8) + "\" rx=\"6\" fill=\"#ffffff\" stroke=\"#d0d0d0\"/>\n";
  svg += "<text x=\"" + svg_number(x + 14) + "\" y=\"" + svg_number(y + 24) +
         "\" font-size=\"14\" font-weight=\"bold\" fill=\"#222\">" + xml_escape(panel.title) + "</text>\n";

  std::vector<std::vector<std::pair<double, double>>> series;
  double low = INFINITY, high = -INFINITY;
  for (const auto& name : panel.metrics) {
    series.push_back(metric_points(history, name));
    for (const auto& p : series.back()) {
      low = std::min(low, p.second);
      high = std::max(high, p.second);
    }
  }
  const bool empty = !(low <= high);
  const Axis ya = make_axis(empty ? 0.0 : low, empty ? 1.0 : high, 4);
  const Axis xa = make_axis(step_low, step_high, 5, /*min_step=*/1.0);  // steps are integers
  auto px = [&](double step) { return left + (step - xa.low) / (xa.high - xa.low) * (right - left); };
  auto py = [&](double value) { return bottom - (value - ya.low) / (ya.high - ya.low) * (bottom - top); };

  // Grid and tick labels.
  for (double t = ya.low; t <= ya.high + ya.step * 1e-6; t += ya.step) {
    svg += "<line x1=\"" + svg_number(left) + "\" y1=\"" + svg_number(py(t)) + "\" x2=\"" + svg_number(right) +
           "\" y2=\"" + svg_number(py(t)) + "\" stroke=\"#ececec\"/>\n";
    svg += "<text x=\"" + svg_number(left - 6) + "\" y=\"" + svg_number(py(t) + 4) +
           "\" font-size=\"11\" text-anchor=\"end\" fill=\"#555\">" + tick_label(t, ya.step) + "</text>\n";
  }
  for (double t = xa.low; t <= xa.high + xa.step * 1e-6; t += xa.step) {
    svg += "<line x1=\"" + svg_number(px(t)) + "\" y1=\"" + svg_number(top) + "\" x2=\"" + svg_number(px(t)) +
           "\" y2=\"" + svg_number(bottom) + "\" stroke=\"#f3f3f3\"/>\n";
    svg += "<text x=\"" + svg_number(px(t)) + "\" y=\"" + svg_number(bottom + 16) +
           "\" font-size=\"11\" text-anchor=\"middle\" fill=\"#555\">" + tick_label(t, xa.step) + "</text>\n";
  }
  svg += "<rect x=\"" + svg_number(left) + "\" y=\"" + svg_number(top) + "\" width=\"" + svg_number(right - left) +
         "\" height=\"" + svg_number(bottom - top) + "\" fill=\"none\" stroke=\"#888\"/>\n";
  svg += "<text x=\"" + svg_number((left + right) / 2) + "\" y=\"" + svg_number(bottom + 32) +
         "\" font-size=\"11\" text-anchor=\"middle\" fill=\"#555\">step</text>\n";
  if (empty) {
    svg += "<text x=\"" + svg_number((left + right) / 2) + "\" y=\"" + svg_number((top + bottom) / 2) +
           "\" font-size=\"13\" text-anchor=\"middle\" fill=\"#999\">" + xml_escape(panel.empty_text) + "</text>\n";
    return svg;
  }

  // Lines (a single point gets a dot so it stays visible), then the legend.
  double legend_x = right - 8;
  std::string legend;
  for (std::size_t i = series.size(); i-- > 0;) {
    const auto& points = series[i];
    if (points.empty()) continue;
    const char* color = series_color(i);
    if (points.size() == 1) {
      svg += "<circle cx=\"" + svg_number(px(points[0].first)) + "\" cy=\"" + svg_number(py(points[0].second)) +
             "\" r=\"3\" fill=\"" + color + "\"/>\n";
    } else {
      svg += "<polyline fill=\"none\" stroke=\"" + std::string(color) +
             "\" stroke-width=\"1.8\" stroke-linejoin=\"round\" points=\"";
      for (const auto& p : points) svg += svg_number(px(p.first)) + "," + svg_number(py(p.second)) + " ";
      svg += "\"/>\n";
      // Sparse series (evaluations, short runs) get markers so single values stay visible.
      if (points.size() <= 40) {
        for (const auto& p : points) {
          svg += "<circle cx=\"" + svg_number(px(p.first)) + "\" cy=\"" + svg_number(py(p.second)) +
                 "\" r=\"2.5\" fill=\"" + color + "\"/>\n";
        }
      }
    }
    const std::string label = i < panel.labels.size() ? panel.labels[i] : panel.metrics[i];
    const double text_width = 6.5 * static_cast<double>(label.size());
    legend += "<rect x=\"" + svg_number(legend_x - text_width - 16) + "\" y=\"" + svg_number(y + 15) +
              "\" width=\"10\" height=\"10\" fill=\"" + color + "\"/>\n";
    legend += "<text x=\"" + svg_number(legend_x - text_width - 2) + "\" y=\"" + svg_number(y + 24) +
              "\" font-size=\"11\" fill=\"#333\">" + xml_escape(label) + "</text>\n";
    legend_x -= text_width + 28;
  }
  return svg + legend;
}

}  // namespace detail

/// The SVG text of the chart: `panels` (default: default_chart_panels()) in a grid of two columns, each metric
/// against the optimizer step; non-finite values are skipped.
inline std::string render_training_chart(const std::vector<MetricRecord>& history,
                                         const std::vector<ChartPanel>& panels = default_chart_panels(),
                                         const std::string& title = "GRPO training") {
  const double panel_w = 480, panel_h = 300, header = 40;
  const std::size_t rows = (panels.size() + 1) / 2;
  const double width = 2 * panel_w, height = header + static_cast<double>(rows) * panel_h + 8;
  double step_low = INFINITY, step_high = -INFINITY;
  for (const auto& record : history) {
    step_low = std::min(step_low, static_cast<double>(record.step));
    step_high = std::max(step_high, static_cast<double>(record.step));
  }
  // The step axis starts at 0 (or below, for odd inputs) and spans at least one step.
  step_low = std::min(step_low, 0.0);
  if (!(step_high > step_low)) step_high = step_low + 1;
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + detail::svg_number(width) + "\" height=\"" +
                    detail::svg_number(height) + "\" viewBox=\"0 0 " + detail::svg_number(width) + " " +
                    detail::svg_number(height) + "\" font-family=\"Helvetica, Arial, sans-serif\">\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"#f7f7f7\"/>\n";
  std::string subtitle;
  if (!history.empty()) {
    subtitle = "step " + std::to_string(history.back().step) + ", epoch " +
               detail::printf_string("%.2f", history.back().epoch);
  }
  svg += "<text x=\"16\" y=\"27\" font-size=\"18\" font-weight=\"bold\" fill=\"#111\">" + detail::xml_escape(title) +
         "</text>\n";
  svg += "<text x=\"" + detail::svg_number(width - 16) +
         "\" y=\"27\" font-size=\"12\" text-anchor=\"end\" fill=\"#666\">" + subtitle + "</text>\n";
  for (std::size_t i = 0; i < panels.size(); ++i) {
    const double x = static_cast<double>(i % 2) * panel_w;
    const double y = header + static_cast<double>(i / 2) * panel_h;
    svg += detail::render_panel(panels[i], history, x, y, panel_w, panel_h, step_low, step_high);
  }
  svg += "</svg>\n";
  return svg;
}

/// Renders the chart and writes it to `path` atomically (a viewer never sees half a file).
inline void write_training_chart(const std::string& path, const std::vector<MetricRecord>& history,
                                 const std::vector<ChartPanel>& panels = default_chart_panels()) {
  detail::atomic_write_file(path, render_training_chart(history, panels), "grpo::write_training_chart: ");
}

}  // namespace grpo
