#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "pipeline/progress.h"

namespace kakusan {
namespace {

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(format_duration(0), "00:00");
  EXPECT_EQ(format_duration(7.4), "00:07");
  EXPECT_EQ(format_duration(754), "12:34");
  EXPECT_EQ(format_duration(3723), "1:02:03");
  EXPECT_EQ(format_duration(-1), "--:--");
}

TEST(Progress, FormatsALine) {
  EXPECT_EQ(format_progress(Phase::Denoising, 12, 25, 0.5, 0), "denoising 12/25  0.50 s/it  ETA 00:07");
  EXPECT_EQ(format_progress(Phase::Denoising, 5, 10, 1.0, 10), "denoising  5/10 [#####.....]  1.00 s/it  ETA 00:05");
  EXPECT_EQ(format_progress(Phase::Loading, 0, 4, -1, 4), "loading   0/4 [....]");
}

// Captures what a ProgressBar writes, with a fake clock.
struct Capture {
  FILE* file = std::tmpfile();
  double now = 0;
  ~Capture() { std::fclose(file); }
  std::string text() {
    std::fflush(file);
    std::rewind(file);
    std::string s;
    for (int c; (c = std::fgetc(file)) != EOF;) s.push_back(char(c));
    return s;
  }
};

TEST(Progress, PlainStylePrintsThrottledLinesAndTheLastOne) {
  Capture out;
  {
    ProgressBar bar(out.file, ProgressBar::Style::Plain, [&] { return out.now; });
    for (int i = 0; i <= 4; ++i) {
      out.now = i * 0.4;  // 0.4 s per step: only some steps get a line
      bar.update({Phase::Denoising, i, 4, ""});
    }
  }
  const std::string text = out.text();
  EXPECT_NE(text.find("denoising 0/4\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("denoising 1/4"), std::string::npos) << text;  // within a second of the start line
  EXPECT_NE(text.find("denoising 3/4  0.40 s/it  ETA 00:00\n"), std::string::npos) << text;
  EXPECT_NE(text.find("denoising 4/4  0.40 s/it  ETA 00:00\n"), std::string::npos) << text;
  EXPECT_EQ(text.find('\r'), std::string::npos);
}

TEST(Progress, BarStyleRedrawsOneLinePerPhase) {
  Capture out;
  {
    ProgressBar bar(out.file, ProgressBar::Style::Bar, [&] { return out.now; });
    bar.update({Phase::Loading, 0, 2, ""});
    out.now = 1;
    bar.update({Phase::Loading, 1, 2, "unet"});
    bar.update({Phase::Loading, 2, 2, "vae"});
    bar.update({Phase::Denoising, 0, 3, ""});
    out.now = 2;
    bar.update({Phase::Denoising, 1, 3, ""});
    out.now = 2.01;  // too soon after the last redraw: skipped
    bar.update({Phase::Denoising, 2, 3, ""});
  }  // the destructor closes the open line
  const std::string text = out.text();
  EXPECT_NE(text.find("\rloading   1/2 [############............]  1.00 s/it  ETA 00:01  unet"), std::string::npos)
      << text;
  EXPECT_NE(text.find("vae\x1b[K\n\rdenoising"), std::string::npos) << text;
  EXPECT_EQ(text.find("denoising 2/3"), std::string::npos) << text;
  EXPECT_EQ(text.back(), '\n');
}

TEST(Progress, OffPrintsNothing) {
  Capture out;
  {
    ProgressBar bar(out.file, ProgressBar::Style::Off);
    bar.update({Phase::Decoding, 0, 1, ""});
    bar.update({Phase::Decoding, 1, 1, ""});
  }
  EXPECT_EQ(out.text(), "");
  EXPECT_EQ(ProgressBar::detect_style(stderr, /*quiet=*/true), ProgressBar::Style::Off);
  EXPECT_EQ(ProgressBar::detect_style(out.file, /*quiet=*/false), ProgressBar::Style::Plain);
}

}  // namespace
}  // namespace kakusan
