#pragma once
// Loss and metric curves as a self-contained SVG file (no scripts, no external fonts or styles) that opens in
// any browser: one panel per quantity, with axes, tick labels, a legend, and one polyline per series — training
// curves solid, validation/test curves dashed. NaN and infinite values leave a gap; an isolated point is drawn
// as a dot.
//
//   hg::train::write_svg_plot(out_dir / "curves.svg", hg::train::panels_from_log(log), "MLP on MNIST");
//
//   // or by hand:
//   hg::train::Panel loss{"loss", {{"train", epochs, train_loss}, {"val", epochs, val_loss, true}}};
//   hg::train::write_svg_plot("loss.svg", {loss});
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hg::train {

class CsvLog;

/// One curve: y over x (same length).
struct Series {
  std::string name;       ///< legend text
  std::vector<double> x;  ///< usually epochs
  std::vector<double> y;  ///< NaN/±inf leave a gap
  bool dashed = false;    ///< validation and test curves
};

/// One chart: its title (also the y-axis quantity), x-axis label and curves.
struct Panel {
  std::string title;
  std::vector<Series> series;
  std::string x_label = "epoch";
};

/// The SVG document for `panels`, laid out two per row under `title`.
std::string svg_plot(std::span<const Panel> panels, std::string_view title = {});
/// Writes svg_plot(...) to `path` (through a temporary file renamed into place, so a viewer never sees half).
void write_svg_plot(const std::filesystem::path& path, std::span<const Panel> panels, std::string_view title = {});
inline void write_svg_plot(const std::filesystem::path& path, const std::vector<Panel>& panels,
                           std::string_view title = {}) {
  write_svg_plot(path, std::span<const Panel>(panels), title);
}

/// Panels from a CSV log against its column `x_column`: columns "train_<m>", "val_<m>", "valid_<m>" and
/// "test_<m>" share the panel "<m>" (train solid, the others dashed); any other column gets a panel of its own.
/// Columns named in `exclude` (e.g. "seconds") are left out.
std::vector<Panel> panels_from_log(const CsvLog& log, std::string_view x_column = "epoch",
                                   const std::vector<std::string>& exclude = {});

}  // namespace hg::train
