#include <hopgrad/nn/train/svg_plot.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <system_error>
#include <utility>

#include <unistd.h>

#include <fmt/format.h>

#include <hopgrad/core/error.h>
#include <hopgrad/nn/train/csv_log.h>

namespace hg::train {
namespace fs = std::filesystem;

namespace {

// Panel geometry in SVG user units (pixels): the plot area is the panel less its margins.
constexpr double kPanelWidth = 460, kPanelHeight = 300;
constexpr double kLeft = 64, kRight = 16, kTop = 34, kBottom = 44;
constexpr double kTitleHeight = 32;
constexpr int kColumns = 2;
// matplotlib's default colour cycle: familiar, and distinguishable for most colour-blind readers.
constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"};

std::string escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

// An axis: the data range widened to whole tick steps, and the ticks, each 1, 2 or 5 × 10^k apart.
struct Axis {
  double lo = 0, hi = 1, step = 0.2;
  std::vector<double> ticks;
  int decimals = 1;  // enough to tell neighbouring ticks apart
};

Axis make_axis(double lo, double hi, bool integral) {
  if (!(lo <= hi)) lo = 0, hi = 1;  // no finite data
  if (lo == hi) {
    double pad = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= pad, hi += pad;
  }
  double raw = (hi - lo) / 5, magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude * (raw / magnitude < 1.5 ? 1 : raw / magnitude < 3.5 ? 2 : raw / magnitude < 7.5 ? 5 : 10);
  if (integral) step = std::max(step, 1.0);
  Axis axis;
  axis.step = step;
  axis.lo = std::floor(lo / step + 1e-9) * step;
  axis.hi = std::ceil(hi / step - 1e-9) * step;
  for (double t = axis.lo; t <= axis.hi + step * 1e-6; t += step)
    axis.ticks.push_back(std::abs(t) < step * 1e-9 ? 0 : t);  // no "-0" from accumulated rounding
  axis.decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  return axis;
}

std::string tick_label(double value, const Axis& axis) {
  double largest = std::max(std::abs(axis.lo), std::abs(axis.hi));
  if (largest >= 1e6 || (largest < 1e-3 && largest > 0)) return fmt::format("{:.2g}", value);
  return fmt::format("{:.{}f}", value, axis.decimals);
}

bool finite_point(const Series& s, size_t i) { return std::isfinite(s.x[i]) && std::isfinite(s.y[i]); }

void draw_panel(std::string& svg, const Panel& panel, double origin_x, double origin_y) {
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo, y_lo = x_lo, y_hi = -x_lo;
  bool integral_x = true;
  for (const Series& s : panel.series) {
    HG_CHECK(s.x.size() == s.y.size(), "svg_plot: series '{}' of panel '{}' has {} x values but {} y values",
             s.name, panel.title, s.x.size(), s.y.size());
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!finite_point(s, i)) continue;
      x_lo = std::min(x_lo, s.x[i]), x_hi = std::max(x_hi, s.x[i]);
      y_lo = std::min(y_lo, s.y[i]), y_hi = std::max(y_hi, s.y[i]);
      integral_x = integral_x && s.x[i] == std::trunc(s.x[i]);
    }
  }
  const Axis x_axis = make_axis(x_lo, x_hi, integral_x), y_axis = make_axis(y_lo, y_hi, false);
  const double left = origin_x + kLeft, right = origin_x + kPanelWidth - kRight;
  const double top = origin_y + kTop, bottom = origin_y + kPanelHeight - kBottom;
  auto px = [&](double x) { return left + (x - x_axis.lo) / (x_axis.hi - x_axis.lo) * (right - left); };
  auto py = [&](double y) { return bottom - (y - y_axis.lo) / (y_axis.hi - y_axis.lo) * (bottom - top); };

  svg += fmt::format("<g class=\"panel\">\n<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"14\" "
                     "font-weight=\"bold\">{}</text>\n",
                     (left + right) / 2, origin_y + 22, escape(panel.title));
  // Grid lines and tick labels, then the frame on top of them.
  for (double t : x_axis.ticks)
    svg += fmt::format("<line x1=\"{0:.2f}\" y1=\"{1:.2f}\" x2=\"{0:.2f}\" y2=\"{2:.2f}\" stroke=\"#e5e5e5\"/>\n"
                       "<text x=\"{0:.2f}\" y=\"{3:.2f}\" text-anchor=\"middle\">{4}</text>\n",
                       px(t), top, bottom, bottom + 16, tick_label(t, x_axis));
  for (double t : y_axis.ticks)
    svg += fmt::format("<line x1=\"{0:.2f}\" y1=\"{1:.2f}\" x2=\"{2:.2f}\" y2=\"{1:.2f}\" stroke=\"#e5e5e5\"/>\n"
                       "<text x=\"{3:.2f}\" y=\"{4:.2f}\" text-anchor=\"end\">{5}</text>\n",
                       left, py(t), right, left - 6, py(t) + 4, tick_label(t, y_axis));
  svg += fmt::format("<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" fill=\"none\" "
                     "stroke=\"#333\"/>\n",
                     left, top, right - left, bottom - top);
  svg += fmt::format("<text x=\"{:.2f}\" y=\"{:.2f}\" text-anchor=\"middle\">{}</text>\n", (left + right) / 2,
                     bottom + 34, escape(panel.x_label));

  // Curves: one polyline per run of finite points; a point with no finite neighbour becomes a dot.
  for (size_t k = 0; k < panel.series.size(); ++k) {
    const Series& s = panel.series[k];
    const char* colour = kPalette[k % std::size(kPalette)];
    const char* dash = s.dashed ? " stroke-dasharray=\"6 4\"" : "";
    for (size_t begin = 0; begin < s.x.size();) {
      if (!finite_point(s, begin)) { ++begin; continue; }
      size_t end = begin;
      while (end < s.x.size() && finite_point(s, end)) ++end;
      if (end - begin == 1) {
        svg += fmt::format("<circle cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"3\" fill=\"{}\"/>\n", px(s.x[begin]),
                           py(s.y[begin]), colour);
      } else {
        std::string points;
        for (size_t i = begin; i < end; ++i)
          points += fmt::format("{}{:.2f},{:.2f}", i > begin ? " " : "", px(s.x[i]), py(s.y[i]));
        svg += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} points=\"{}\"><title>{}</title>"
                           "</polyline>\n",
                           colour, dash, points, escape(s.name));
      }
      begin = end;
    }
  }

  // Legend in the corner of the plot area that covers the fewest data points (top right on ties), on a
  // translucent box so anything under it stays visible.
  if (!panel.series.empty()) {
    size_t longest = 0;
    for (const Series& s : panel.series) longest = std::max(longest, s.name.size());
    const double width = 40 + 7.0 * static_cast<double>(longest), height = 8 + 18.0 * panel.series.size();
    double x0 = right - width - 8, y0 = top + 8;
    size_t fewest = std::numeric_limits<size_t>::max();
    const double x_right = right - width - 8, x_left = left + 8, y_top = top + 8, y_bottom = bottom - height - 8;
    for (auto [cx, cy] : {std::pair{x_right, y_top}, std::pair{x_left, y_top}, std::pair{x_right, y_bottom},
                          std::pair{x_left, y_bottom}}) {
      auto inside = [&](double x, double y) {
        return x >= cx - 4 && x <= cx + width + 4 && y >= cy - 4 && y <= cy + height + 4;
      };
      size_t covered = 0;  // points, and samples along the segments between them
      for (const Series& s : panel.series)
        for (size_t i = 0; i < s.x.size(); ++i) {
          if (!finite_point(s, i)) continue;
          covered += inside(px(s.x[i]), py(s.y[i]));
          if (i + 1 < s.x.size() && finite_point(s, i + 1))
            for (double t = 0.125; t < 1; t += 0.125)
              covered += inside(px(s.x[i] + t * (s.x[i + 1] - s.x[i])), py(s.y[i] + t * (s.y[i + 1] - s.y[i])));
        }
      if (covered < fewest) fewest = covered, x0 = cx, y0 = cy;
    }
    svg += fmt::format("<g class=\"legend\">\n<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" "
                       "fill=\"white\" fill-opacity=\"0.85\" stroke=\"#999\"/>\n",
                       x0, y0, width, height);
    for (size_t k = 0; k < panel.series.size(); ++k) {
      const double y = y0 + 13 + 18.0 * static_cast<double>(k);
      svg += fmt::format("<line x1=\"{:.2f}\" y1=\"{:.2f}\" x2=\"{:.2f}\" y2=\"{:.2f}\" stroke=\"{}\" "
                         "stroke-width=\"2\"{}/>\n<text x=\"{:.2f}\" y=\"{:.2f}\">{}</text>\n",
                         x0 + 6, y, x0 + 30, y, kPalette[k % std::size(kPalette)],
                         panel.series[k].dashed ? " stroke-dasharray=\"6 4\"" : "", x0 + 36, y + 4,
                         escape(panel.series[k].name));
    }
    svg += "</g>\n";
  }
  svg += "</g>\n";
}

}  // namespace

std::string svg_plot(std::span<const Panel> panels, std::string_view title) {
  const size_t columns = std::clamp<size_t>(panels.size(), 1, kColumns);
  const size_t rows = std::max<size_t>(1, (panels.size() + columns - 1) / columns);
  const double header = title.empty() ? 0 : kTitleHeight;
  const double width = kPanelWidth * static_cast<double>(columns);
  const double height = header + kPanelHeight * static_cast<double>(rows);
  std::string svg = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" height=\"{1:.0f}\" viewBox=\"0 0 {0:.0f} {1:.0f}\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      width, height);
  if (!title.empty())
    svg += fmt::format("<text x=\"{:.1f}\" y=\"22\" text-anchor=\"middle\" font-size=\"16\">{}</text>\n", width / 2,
                       escape(title));
  for (size_t i = 0; i < panels.size(); ++i)
    draw_panel(svg, panels[i], kPanelWidth * static_cast<double>(i % columns),
               header + kPanelHeight * static_cast<double>(i / columns));
  svg += "</svg>\n";
  return svg;
}

void write_svg_plot(const fs::path& path, std::span<const Panel> panels, std::string_view title) {
  const std::string svg = svg_plot(panels, title);
  std::error_code ec;
  if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
  fs::path temporary = path;
  temporary += fmt::format(".tmp{}", ::getpid());
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    HG_CHECK(out.is_open(), "write_svg_plot: cannot open {} for writing", temporary.string());
    out << svg;
    out.close();
    HG_CHECK(out.good(), "write_svg_plot: writing {} failed", temporary.string());
  }
  fs::rename(temporary, path, ec);
  if (ec) fs::remove(temporary);
  HG_CHECK(!ec, "write_svg_plot: cannot rename {} to {}: {}", temporary.string(), path.string(), ec.message());
}

std::vector<Panel> panels_from_log(const CsvLog& log, std::string_view x_column,
                                   const std::vector<std::string>& exclude) {
  const std::vector<double> x = log.column(x_column);
  std::vector<Panel> panels;
  std::map<std::string, size_t, std::less<>> panel_of;  // metric → index in panels, in first-seen order
  for (const std::string& column : log.columns()) {
    if (column == x_column || std::find(exclude.begin(), exclude.end(), column) != exclude.end()) continue;
    std::string metric = column, split;
    for (std::string_view prefix : {"train_", "val_", "valid_", "test_"})
      if (column.size() > prefix.size() && column.starts_with(prefix)) {
        metric = column.substr(prefix.size());
        split = prefix.substr(0, prefix.size() - 1);
        break;
      }
    auto [it, added] = panel_of.try_emplace(metric, panels.size());
    if (added) panels.push_back(Panel{metric, {}, std::string(x_column)});
    panels[it->second].series.push_back(
        Series{split.empty() ? column : split, x, log.column(column), !split.empty() && split != "train"});
  }
  return panels;
}

}  // namespace hg::train
