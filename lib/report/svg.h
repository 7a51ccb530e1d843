// A small SVG writer for the report: line charts and bar charts with axes, "nice" tick values,
// axis labels and a legend, and a heat map with its colour scale. Output is a self-contained
// <svg> element (no fonts, scripts or external references) to inline into HTML.
//
// Tick values follow Heckbert's "nice numbers" (steps of 1, 2 or 5 times a power of ten),
// so a reader sees 0, 0.2, 0.4 ... rather than 0, 0.1837 .... Every coordinate must be
// finite: a NaN or infinity in the data is refused (std::invalid_argument), never drawn as
// a broken path. Text is XML-escaped.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mnistctl::svg {

// Escapes & < > " ' for text and attribute values.
std::string escape(const std::string& s);

struct Ticks {
  double lo = 0, hi = 1, step = 1;  // the axis spans [lo, hi]; ticks at lo, lo+step, ... hi
  std::vector<double> values;
  int decimals = 0;                 // digits after the point that tell the ticks apart
};
// About `target` ticks covering [lo, hi] (lo <= hi, both finite); the axis is widened to
// the enclosing tick values. lo == hi gets a small span around the value.
Ticks nice_ticks(double lo, double hi, int target = 6);
// A tick label: `decimals` digits, no "-0".
std::string tick_label(double v, int decimals);

struct Series {
  std::string name;             // legend text
  std::vector<double> x, y;     // same length, all finite
  std::string color = "#1f77b4";
  double stroke_width = 1.5;
  bool markers = false;         // a dot on every point
  bool dashed = false;
  bool steps = false;           // hold each value until the next x (a learning-rate schedule)
};

struct LineChart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  int width = 560, height = 320;
  bool y_include_zero = false;
  // Fixed axis ranges (when lo < hi); otherwise from the data.
  double x_lo = 0, x_hi = 0, y_lo = 0, y_hi = 0;
  bool integer_x_ticks = false;  // epochs: ticks only at whole numbers
};
std::string line_chart(const LineChart& c);

struct BarChart {
  std::string title, x_label, y_label;
  std::vector<std::string> labels;  // one per bar, drawn on the category axis
  std::vector<double> values;       // finite
  std::vector<std::string> annotations;  // optional text at the end of each bar
  std::string color = "#1f77b4";
  int width = 560, height = 320;
  double v_lo = 0, v_hi = 0;        // value axis range when lo < hi
};
// Horizontal bars: categories top to bottom, values along x.
std::string bar_chart(const BarChart& c);

struct HeatMap {
  std::string title, row_label, col_label;
  std::vector<std::string> row_names, col_names;
  std::vector<int64_t> counts;      // rows x cols, row-major, >= 0
  int cell = 44;                    // cell size in px
};
// Cells coloured by count on a log scale (so that a handful of errors stays visible beside
// a diagonal of thousands), the count written in each cell, and a colour bar.
std::string heat_map(const HeatMap& h);

}  // namespace mnistctl::svg
