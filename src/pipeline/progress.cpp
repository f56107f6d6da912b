#include "pipeline/progress.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"

namespace kakusan {

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::Loading: return "loading";
    case Phase::Encoding: return "encoding";
    case Phase::Denoising: return "denoising";
    case Phase::Decoding: return "decoding";
  }
  return "?";
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const long total = std::lround(seconds);
  const long h = total / 3600, m = (total / 60) % 60, s = total % 60;
  char buffer[32];
  if (h > 0)
    std::snprintf(buffer, sizeof buffer, "%ld:%02ld:%02ld", h, m, s);
  else
    std::snprintf(buffer, sizeof buffer, "%02ld:%02ld", m, s);
  return buffer;
}

std::string format_progress(Phase phase, int done, int total, double seconds_per_unit, int bar_width) {
  char head[64];
  const int digits = int(std::to_string(std::max(total, 0)).size());
  std::snprintf(head, sizeof head, "%-9s %*d/%d", phase_name(phase), digits, done, total);
  std::string line = head;
  if (bar_width > 0) {
    const int filled = total > 0 ? int(int64_t(bar_width) * std::clamp(done, 0, total) / total) : 0;
    line += " [" + std::string(size_t(filled), '#') + std::string(size_t(bar_width - filled), '.') + "]";
  }
  if (seconds_per_unit >= 0) {
    char rate[64];
    std::snprintf(rate, sizeof rate, "  %.2f s/it  ETA %s", seconds_per_unit,
                  format_duration(seconds_per_unit * std::max(total - done, 0)).c_str());
    line += rate;
  }
  return line;
}

ProgressBar::Style ProgressBar::detect_style(FILE* stream, bool quiet) {
  if (quiet) return Style::Off;
  return isatty(fileno(stream)) ? Style::Bar : Style::Plain;
}

ProgressBar::ProgressBar(FILE* stream, Style style, Clock clock)
    : stream_(stream), style_(style), clock_(std::move(clock)) {
  if (!clock_) {
    clock_ = [] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    };
  }
}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::finish() {
  if (line_open_) {
    std::fputc('\n', stream_);
    std::fflush(stream_);
    line_open_ = false;
  }
}

ProgressCallback ProgressBar::callback() {
  return [this](const Progress& event) { update(event); };
}

void ProgressBar::update(const Progress& event) {
  if (style_ == Style::Off) return;
  const double now = clock_();
  if (!in_phase_ || event.phase != phase_ || event.done == 0) {
    finish();
    phase_ = event.phase;
    in_phase_ = true;
    phase_start_ = now;
    last_print_ = -1e300;
  }
  const bool final_unit = event.total > 0 && event.done >= event.total;
  // Plain lines: the start, at most one a second, and the last one; the bar redraws at most 20 times a second.
  const double min_interval = style_ == Style::Plain ? 1.0 : 0.05;
  if (!final_unit && event.done != 0 && now - last_print_ < min_interval) return;
  last_print_ = now;
  draw(event, final_unit);
  if (final_unit) in_phase_ = false;
}

void ProgressBar::draw(const Progress& event, bool final_unit) {
  const double elapsed = clock_() - phase_start_;
  const double per_unit = event.done > 0 ? elapsed / event.done : -1.0;
  std::string line = format_progress(event.phase, event.done, event.total, per_unit,
                                     style_ == Style::Bar ? 24 : 0);
  if (!event.item.empty()) line += str_cat("  ", event.item);
  if (style_ == Style::Bar) {
    // \r and clear-to-end-of-line redraw the same line.
    std::fprintf(stream_, "\r%s\x1b[K", line.c_str());
    line_open_ = true;
    if (final_unit) finish();
  } else {
    std::fprintf(stream_, "%s\n", line.c_str());
  }
  std::fflush(stream_);
}

}  // namespace kakusan
