// A progress display for the long phases of a run (loading, encoding, denoising, decoding) on stderr.
//
// On a terminal it redraws one line per phase: "denoising  12/25 [######......]  0.42 s/it  ETA 00:05".
// When the stream is not a terminal (a log file, CI) it prints plain lines instead, at most one per second
// plus the last one of each phase, so logs stay readable. --quiet turns it off.
#pragma once

#include <cstdio>
#include <functional>
#include <string>

#include "kakusan/pipeline.h"

namespace kakusan {

// One line of progress: phase, units done/total, a bar (when bar_width > 0), seconds per unit and ETA.
// seconds_per_unit < 0 means "not known yet".
std::string format_progress(Phase phase, int done, int total, double seconds_per_unit, int bar_width);

// "00:07", "12:34", "1:02:03".
std::string format_duration(double seconds);

class ProgressBar {
 public:
  enum class Style { Off, Plain, Bar };
  // Off if quiet, Bar if the stream is a terminal, Plain otherwise.
  static Style detect_style(FILE* stream, bool quiet);

  using Clock = std::function<double()>;  // seconds since any fixed point
  explicit ProgressBar(FILE* stream, Style style, Clock clock = {});
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void update(const Progress& event);
  // Ends a line left open by the bar (call before printing anything else).
  void finish();
  // A ProgressCallback that forwards to this bar.
  ProgressCallback callback();

 private:
  void draw(const Progress& event, bool final_unit);

  FILE* stream_;
  Style style_;
  Clock clock_;
  Phase phase_ = Phase::Loading;
  bool in_phase_ = false;
  bool line_open_ = false;
  double phase_start_ = 0;
  double last_print_ = -1e300;
};

}  // namespace kakusan
