#include "report/svg.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace mnistctl::svg {

namespace {

// Rough advance of a character at the report's 12px sans-serif, to size margins and legends
// (an overestimate: a margin a little too wide is better than a clipped label).
constexpr double kCharW = 7.0;
const char* kFont = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\"";

double text_w(const std::string& s, double char_w = kCharW) { return static_cast<double>(s.size()) * char_w; }

void require_finite(double v, const std::string& what) {
  if (!std::isfinite(v)) throw std::invalid_argument(fmt::format("svg: {} is not a finite number ({})", what, v));
}

// Heckbert's nice number: 1, 2, 5 or 10 times a power of ten near x (rounded or the ceiling).
// The step is the nice number nearest range / (target - 1) (Heckbert also rounds the range
// first, which gives fewer ticks than asked for).
double nice_num(double x, bool round) {
  const double e = std::floor(std::log10(x));
  const double f = x / std::pow(10.0, e);
  double nf;
  if (round)
    nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
  else
    nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
  return nf * std::pow(10.0, e);
}

std::string num(double v) { return fmt::format("{:.2f}", v); }

// Axis-label text for a whole axis: thousands shown as "k" once the values reach 10,000.
struct AxisFormat {
  double scale = 1;
  std::string suffix;
  int decimals = 0;
};
AxisFormat axis_format(const Ticks& t) {
  AxisFormat f;
  f.decimals = t.decimals;
  if (std::max(std::fabs(t.lo), std::fabs(t.hi)) >= 10000) {
    f.scale = 1000;
    f.suffix = "k";
    f.decimals = std::max(0, t.decimals - 3);
    // A step below 1000 (e.g. 500) needs a digit after the point once divided by 1000.
    const double s = t.step / 1000;
    f.decimals = std::max(f.decimals, s >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(s) - 1e-9)));
  }
  return f;
}
std::string axis_label(double v, const AxisFormat& f) { return v == 0 ? "0" : tick_label(v / f.scale, f.decimals) + f.suffix; }

// The Blues colour map at t in [0, 1].
std::string blues(double t) {
  static const double stops[][3] = {{247, 251, 255}, {198, 219, 239}, {107, 174, 214}, {33, 113, 181}, {8, 48, 107}};
  t = std::clamp(t, 0.0, 1.0) * 4;
  int i = std::min(3, static_cast<int>(t));
  double u = t - i;
  int rgb[3];
  for (int k = 0; k < 3; ++k) rgb[k] = static_cast<int>(std::lround(stops[i][k] + (stops[i + 1][k] - stops[i][k]) * u));
  return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
}

std::string open_svg(int w, int h, const std::string& title) {
  return fmt::format(
      "<svg width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\" "
      "aria-label=\"{}\" {} font-size=\"12\">\n<rect width=\"{}\" height=\"{}\" fill=\"#fff\"/>\n"
      "<text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
      w, h, w, h, escape(title), kFont, w, h, w / 2, escape(title));
}

}  // namespace

std::string escape(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
  return o;
}

Ticks nice_ticks(double lo, double hi, int target) {
  require_finite(lo, "axis minimum");
  require_finite(hi, "axis maximum");
  if (lo > hi) std::swap(lo, hi);
  target = std::clamp(target, 2, 20);
  if (hi - lo <= std::max(std::fabs(lo), std::fabs(hi)) * 1e-12) {  // one value: a span around it
    const double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  Ticks t;
  t.step = nice_num((hi - lo) / (target - 1), true);
  t.lo = std::floor(lo / t.step + 1e-9) * t.step;
  t.hi = std::ceil(hi / t.step - 1e-9) * t.step;
  const int n = static_cast<int>(std::lround((t.hi - t.lo) / t.step)) + 1;
  for (int i = 0; i < n; ++i) {
    double v = t.lo + i * t.step;
    if (std::fabs(v) < t.step * 1e-9) v = 0;  // no -0 or 1e-17 from the sum
    t.values.push_back(v);
  }
  t.decimals = std::max(0, static_cast<int>(-std::floor(std::log10(t.step) + 1e-9)));
  return t;
}

std::string tick_label(double v, int decimals) {
  std::string s = fmt::format("{:.{}f}", v, std::max(0, decimals));
  if (s.find_first_not_of("-0.") == std::string::npos && s[0] == '-') s.erase(0, 1);  // "-0.0" -> "0.0"
  return s;
}

std::string line_chart(const LineChart& c) {
  double xlo = HUGE_VAL, xhi = -HUGE_VAL, ylo = HUGE_VAL, yhi = -HUGE_VAL;
  for (const auto& s : c.series) {
    if (s.x.size() != s.y.size())
      throw std::invalid_argument(fmt::format("svg: series '{}' has {} x and {} y values", s.name, s.x.size(), s.y.size()));
    for (size_t i = 0; i < s.x.size(); ++i) {
      require_finite(s.x[i], fmt::format("series '{}' x[{}]", s.name, i));
      require_finite(s.y[i], fmt::format("series '{}' y[{}]", s.name, i));
      xlo = std::min(xlo, s.x[i]);
      xhi = std::max(xhi, s.x[i]);
      ylo = std::min(ylo, s.y[i]);
      yhi = std::max(yhi, s.y[i]);
    }
  }
  const bool empty = xlo > xhi;  // no series has a point (a run before its first record)
  for (double v : {c.x_lo, c.x_hi, c.y_lo, c.y_hi}) require_finite(v, "a fixed axis range");
  if (c.x_lo < c.x_hi) xlo = std::min(xlo, c.x_lo), xhi = std::max(xhi, c.x_hi);
  if (c.y_lo < c.y_hi) ylo = std::min(ylo, c.y_lo), yhi = std::max(yhi, c.y_hi);
  // An axis with neither points nor a fixed range spans 0..1 (a fixed range alone is kept:
  // an empty epoch chart still shows the planned epochs).
  if (xlo > xhi) xlo = 0, xhi = 1;
  if (ylo > yhi) ylo = 0, yhi = 1;
  if (c.y_include_zero) ylo = std::min(ylo, 0.0), yhi = std::max(yhi, 0.0);

  Ticks xt = nice_ticks(xlo, xhi, 8);
  if (c.integer_x_ticks && xt.step < 1) {
    xt = nice_ticks(std::floor(xlo), std::ceil(xhi), static_cast<int>(std::ceil(xhi) - std::floor(xlo)) + 1);
    if (xt.step < 1) xt = nice_ticks(std::floor(xlo), std::max(std::ceil(xhi), std::floor(xlo) + 1), 2);
  }
  Ticks yt = nice_ticks(ylo, yhi, 6);
  const AxisFormat xf = axis_format(xt), yf = axis_format(yt);

  // Margins: room for the widest y tick label, the rotated y label, the legend rows.
  double ylab_w = 0;
  for (double v : yt.values) ylab_w = std::max(ylab_w, text_w(axis_label(v, yf)));
  const double left = 28 + ylab_w + 8, right = 18;
  // Legend entries laid out in rows under the title.
  struct Entry { double x; int row; };
  std::vector<Entry> entries;
  double lx = left;
  int rows = c.series.empty() ? 0 : 1;
  for (const auto& s : c.series) {
    double w = 26 + text_w(s.name) + 16;
    if (lx + w > c.width - right && lx > left) lx = left, ++rows;
    entries.push_back({lx, rows - 1});
    lx += w;
  }
  const double top = 30 + rows * 16 + 8, bottom = c.height - 44.0;
  const double pw = c.width - left - right, ph = bottom - top;
  auto X = [&](double x) { return left + (x - xt.lo) / (xt.hi - xt.lo) * pw; };
  auto Y = [&](double y) { return bottom - (y - yt.lo) / (yt.hi - yt.lo) * ph; };

  std::string o = open_svg(c.width, c.height, c.title);
  // Grid and tick labels.
  o += "<g stroke=\"#e5e5e5\" stroke-width=\"1\">\n";
  for (double v : yt.values) o += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/>\n", num(left), num(left + pw), num(Y(v)), num(Y(v)));
  for (double v : xt.values) o += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/>\n", num(X(v)), num(X(v)), num(top), num(bottom));
  o += "</g>\n<g fill=\"#333\">\n";
  for (double v : yt.values)
    o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", num(left - 6), num(Y(v) + 4), escape(axis_label(v, yf)));
  for (double v : xt.values)
    o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", num(X(v)), num(bottom + 16), escape(axis_label(v, xf)));
  o += "</g>\n";
  // Axes.
  o += fmt::format("<path d=\"M{} {}V{}H{}\" fill=\"none\" stroke=\"#333\" stroke-width=\"1\"/>\n", num(left), num(top), num(bottom), num(left + pw));
  o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#111\">{}</text>\n", num(left + pw / 2), c.height - 8, escape(c.x_label));
  o += fmt::format("<text transform=\"translate(14 {}) rotate(-90)\" text-anchor=\"middle\" fill=\"#111\">{}</text>\n", num(top + ph / 2), escape(c.y_label));
  if (empty)
    o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#888\">no data yet</text>\n", num(left + pw / 2), num(top + ph / 2));
  // Series, then the legend.
  for (const auto& s : c.series) {
    if (s.x.empty()) continue;
    std::string d;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (i == 0)
        d += fmt::format("M{} {}", num(X(s.x[i])), num(Y(s.y[i])));
      else if (s.steps)
        d += fmt::format("H{}V{}", num(X(s.x[i])), num(Y(s.y[i])));
      else
        d += fmt::format("L{} {}", num(X(s.x[i])), num(Y(s.y[i])));
    }
    o += fmt::format("<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" stroke-linejoin=\"round\"{}/>\n", d,
                     escape(s.color), s.stroke_width, s.dashed ? " stroke-dasharray=\"6 4\"" : "");
    if (s.markers || s.x.size() == 1) {
      o += fmt::format("<g fill=\"{}\">", escape(s.color));
      for (size_t i = 0; i < s.x.size(); ++i)
        o += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"3\"/>", num(X(s.x[i])), num(Y(s.y[i])));
      o += "</g>\n";
    }
  }
  for (size_t i = 0; i < c.series.size(); ++i) {
    const auto& s = c.series[i];
    const double y = 36 + entries[i].row * 16, x = entries[i].x;
    o += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"{}/>", num(x), num(x + 20), num(y - 4),
                     num(y - 4), escape(s.color), s.dashed ? " stroke-dasharray=\"6 4\"" : "");
    if (s.markers) o += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{}\"/>", num(x + 10), num(y - 4), escape(s.color));
    o += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#111\">{}</text>\n", num(x + 26), num(y), escape(s.name));
  }
  return o + "</svg>\n";
}

std::string bar_chart(const BarChart& c) {
  if (c.labels.size() != c.values.size())
    throw std::invalid_argument(fmt::format("svg: bar chart has {} labels and {} values", c.labels.size(), c.values.size()));
  if (!c.annotations.empty() && c.annotations.size() != c.values.size())
    throw std::invalid_argument("svg: bar chart annotations must match the values");
  // Bars start at zero, unless a fixed range (zoomed in) leaves zero out.
  require_finite(c.v_lo, "a fixed axis range");
  require_finite(c.v_hi, "a fixed axis range");
  const bool fixed = c.v_lo < c.v_hi;
  double lo = fixed ? c.v_lo : 0, hi = fixed ? c.v_hi : 0;
  for (size_t i = 0; i < c.values.size(); ++i) {
    require_finite(c.values[i], fmt::format("bar '{}'", c.labels[i]));
    lo = std::min(lo, c.values[i]);
    hi = std::max(hi, c.values[i]);
  }
  Ticks t = nice_ticks(lo, hi, 6);
  const AxisFormat f = axis_format(t);
  double lab_w = 0, ann_w = 0;
  for (const auto& l : c.labels) lab_w = std::max(lab_w, text_w(l));
  for (const auto& a : c.annotations) ann_w = std::max(ann_w, text_w(a, 6.5));
  const double left = 28 + lab_w + 8, right = 14 + ann_w, top = 34, bottom = c.height - 44.0;
  const double pw = c.width - left - right, ph = bottom - top;
  const double n = std::max<double>(1, static_cast<double>(c.values.size())), band = ph / n;
  auto X = [&](double v) { return left + (v - t.lo) / (t.hi - t.lo) * pw; };

  std::string o = open_svg(c.width, c.height, c.title);
  o += "<g stroke=\"#e5e5e5\">\n";
  for (double v : t.values) o += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/>\n", num(X(v)), num(X(v)), num(top), num(bottom));
  o += "</g>\n";
  for (size_t i = 0; i < c.values.size(); ++i) {
    const double base = std::clamp(0.0, t.lo, t.hi);
    const double y = top + band * i, x0 = X(std::min(base, c.values[i])), x1 = X(std::max(base, c.values[i]));
    o += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"><title>{}: {}</title></rect>\n", num(x0),
                     num(y + band * 0.15), num(x1 - x0), num(band * 0.7), escape(c.color), escape(c.labels[i]),
                     escape(c.annotations.empty() ? tick_label(c.values[i], 4) : c.annotations[i]));
    o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#111\">{}</text>\n", num(left - 6), num(y + band / 2 + 4),
                     escape(c.labels[i]));
    if (!c.annotations.empty())
      o += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#333\" font-size=\"11\">{}</text>\n", num(x1 + 4), num(y + band / 2 + 4),
                       escape(c.annotations[i]));
  }
  o += "<g fill=\"#333\">\n";
  for (double v : t.values)
    o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", num(X(v)), num(bottom + 16), escape(axis_label(v, f)));
  o += "</g>\n";
  o += fmt::format("<path d=\"M{} {}V{}H{}\" fill=\"none\" stroke=\"#333\"/>\n", num(left), num(top), num(bottom), num(left + pw));
  o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#111\">{}</text>\n", num(left + pw / 2), c.height - 8, escape(c.x_label));
  o += fmt::format("<text transform=\"translate(14 {}) rotate(-90)\" text-anchor=\"middle\" fill=\"#111\">{}</text>\n", num(top + ph / 2), escape(c.y_label));
  return o + "</svg>\n";
}

std::string heat_map(const HeatMap& h) {
  const size_t rows = h.row_names.size(), cols = h.col_names.size();
  if (h.counts.size() != rows * cols)
    throw std::invalid_argument(fmt::format("svg: heat map has {} counts for {} x {} cells", h.counts.size(), rows, cols));
  int64_t max = 0;
  for (int64_t v : h.counts) {
    if (v < 0) throw std::invalid_argument("svg: heat map counts must be >= 0");
    max = std::max(max, v);
  }
  const double cell = h.cell;
  double row_w = 0, col_w = 0;
  for (const auto& s : h.row_names) row_w = std::max(row_w, text_w(s));
  for (const auto& s : h.col_names) col_w = std::max(col_w, text_w(s));
  const bool rotate = col_w > cell - 4;  // long class names run diagonally under the grid
  const double left = 28 + row_w + 8, top = 34;
  const double grid_w = cell * cols, grid_h = cell * rows;
  const double col_area = rotate ? col_w * 0.66 + 12 : 18;
  const double bar_x = left + grid_w + 24, bar_w = 14;
  const int width = static_cast<int>(bar_x + bar_w + 56);
  const int height = static_cast<int>(top + grid_h + col_area + 30);
  auto tval = [&](int64_t v) { return max == 0 ? 0.0 : std::log1p(static_cast<double>(v)) / std::log1p(static_cast<double>(max)); };

  std::string o = open_svg(width, height, h.title);
  for (size_t r = 0; r < rows; ++r)
    for (size_t k = 0; k < cols; ++k) {
      const int64_t v = h.counts[r * cols + k];
      const double x = left + k * cell, y = top + r * cell, t = tval(v);
      o += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"#fff\"><title>{} {}, {} {}: {}</title></rect>",
                       num(x), num(y), num(cell), num(cell), v == 0 ? "#fafafa" : blues(t), escape(h.row_label), escape(h.row_names[r]),
                       escape(h.col_label), escape(h.col_names[k]), v);
      if (v > 0)
        o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" fill=\"{}\">{}</text>", num(x + cell / 2),
                         num(y + cell / 2 + 4), t > 0.55 ? "#fff" : "#111", v);
      o += "\n";
    }
  for (size_t r = 0; r < rows; ++r)
    o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#111\">{}</text>\n", num(left - 6), num(top + r * cell + cell / 2 + 4),
                     escape(h.row_names[r]));
  for (size_t k = 0; k < cols; ++k) {
    const double x = left + k * cell + cell / 2, y = top + grid_h + 14;
    if (rotate)
      o += fmt::format("<text transform=\"translate({} {}) rotate(-40)\" text-anchor=\"end\" fill=\"#111\">{}</text>\n", num(x + 4), num(y - 4),
                       escape(h.col_names[k]));
    else
      o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#111\">{}</text>\n", num(x), num(y), escape(h.col_names[k]));
  }
  // Rotated column names slant down-left from their column, so they need room below, not beside.
  o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#111\">{}</text>\n", num(left + grid_w / 2), height - 8,
                   escape(h.col_label));
  o += fmt::format("<text transform=\"translate(14 {}) rotate(-90)\" text-anchor=\"middle\" fill=\"#111\">{}</text>\n", num(top + grid_h / 2),
                   escape(h.row_label));
  // Colour bar: discrete steps (no gradient element, so no ids to collide between charts).
  const int steps = 48;
  for (int i = 0; i < steps; ++i) {
    const double y = top + grid_h - (i + 1) * grid_h / steps;
    o += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>", num(bar_x), num(y), num(bar_w), num(grid_h / steps + 0.5),
                     blues((i + 0.5) / steps));
  }
  o += "\n";
  std::vector<int64_t> marks{0};
  for (int64_t m = 1; m <= max; m *= 10) marks.push_back(m);
  if (max > 0 && marks.back() != max) marks.push_back(max);
  for (int64_t m : marks) {
    const double y = top + grid_h - tval(m) * grid_h;
    // The max and the power of ten below it can sit close together: skip a mark too near the max.
    if (m != max && m != 0 && max > 0 && (tval(max) - tval(m)) * grid_h < 14) continue;
    o += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#333\"/><text x=\"{}\" y=\"{}\" fill=\"#333\" font-size=\"11\">{}</text>\n",
                     num(bar_x + bar_w), num(bar_x + bar_w + 4), num(y), num(y), num(bar_x + bar_w + 6), num(y + 4), m);
  }
  o += fmt::format("<text transform=\"translate({} {}) rotate(-90)\" text-anchor=\"middle\" fill=\"#555\" font-size=\"11\">count (log scale)</text>\n",
                   num(bar_x - 6), num(top + grid_h / 2));
  return o + "</svg>\n";
}

}  // namespace mnistctl::svg
