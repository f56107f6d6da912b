// `kakusan bench` end to end on the kit's tiny model: the table's rows, the JSON line's keys and values, the
// FLOP count of the text encoder against its shapes, a measured loop with --steps, and bad flags. Timings
// themselves are not checked (they depend on the machine), only that they are there and positive.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/child_process.h"
#include "support/golden.h"

namespace kakusan {
namespace {

namespace fs = std::filesystem;

struct BenchRun {
  int exit_code = -1;
  std::string out, err;
  nlohmann::json json;  // the last line of stdout, parsed (null if it is not JSON)
};

// `kakusan bench args...`, with its JSON line parsed.
BenchRun run_bench(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"bench"};
  argv.insert(argv.end(), args.begin(), args.end());
  const fs::path logs = fs::temp_directory_path() / ("kakusan_bench_" + std::to_string(getpid()));
  fs::create_directories(logs);
  testing::ChildProcess child(KAKUSAN_CLI_PATH, argv, logs);
  const testing::ChildEnd end = child.wait(std::chrono::minutes(5), std::chrono::milliseconds(10));
  BenchRun r;
  r.exit_code = end.status && WIFEXITED(*end.status) ? WEXITSTATUS(*end.status) : -1;
  r.out = child.stdout_text();
  r.err = child.stderr_text();
  fs::remove_all(logs);
  std::string last = r.out;
  while (!last.empty() && last.back() == '\n') last.pop_back();
  last = last.substr(last.rfind('\n') + 1);
  r.json = nlohmann::json::parse(last, nullptr, /*allow_exceptions=*/false);
  return r;
}

std::string tiny_model() { return (*testing::golden_dir() / "tiny-sd").string(); }

// The arguments as one line, for failure messages.
std::string joined(const std::vector<std::string>& args) {
  std::string line;
  for (const std::string& a : args) line += (line.empty() ? "" : " ") + a;
  return line;
}

const char* const kPositiveKeys[] = {
    "text_encoder_s", "unet_step_s",     "vae_decode_s",       "total_s",
    "peak_rss_mb",    "gflops_unet",     "peak_gflops",        "text_encoder_cpu_s",
    "unet_step_cpu_s", "vae_decode_cpu_s", "gflop_text_encoder", "gflop_unet_step",
    "gflop_vae_decode", "text_encoder_rss_mb", "unet_rss_mb",  "vae_decode_rss_mb"};

TEST(BenchCli, PrintsTableThenJsonWithEveryFigure) {
  KK_REQUIRE_GOLDEN();
  const BenchRun r = run_bench({"--model", tiny_model(), "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* row : {"| text encoder |", "| UNet step (batch 2) |", "| VAE decode |",
                          "| total (text encoder + 20 x UNet step + VAE decode) |", "% of peak", "peak RSS MB"})
    EXPECT_NE(r.out.find(row), std::string::npos) << row << " missing from\n" << r.out;
  EXPECT_NE(r.out.find("64x64, batch 1"), std::string::npos) << r.out;  // default size: sample_size 8 x 8
  ASSERT_TRUE(r.json.is_object()) << "last line is not JSON:\n" << r.out;
  for (const char* key : kPositiveKeys) {
    ASSERT_TRUE(r.json.contains(key)) << key;
    ASSERT_TRUE(r.json[key].is_number()) << key;
    EXPECT_GT(r.json[key].get<double>(), 0.0) << key;
  }
  EXPECT_EQ(r.json["threads"], 2);
  EXPECT_EQ(r.json["steps"], 20);
  EXPECT_EQ(r.json["total_measured"], false);
  // The estimated total is text encoder + 20 UNet steps + VAE decode, in time and in FLOPs.
  const double total = r.json["text_encoder_s"].get<double>() + 20 * r.json["unet_step_s"].get<double>() +
                       r.json["vae_decode_s"].get<double>();
  EXPECT_NEAR(r.json["total_s"].get<double>(), total, 1e-9 * total);
  // The peak RSS of the run is the largest of its phases'.
  const double phases = std::max({r.json["text_encoder_rss_mb"].get<double>(), r.json["unet_rss_mb"].get<double>(),
                                  r.json["vae_decode_rss_mb"].get<double>()});
  EXPECT_DOUBLE_EQ(r.json["peak_rss_mb"].get<double>(), phases);
}

// The tiny CLIP (hidden 32, MLP 37, 2 layers, 77 tokens) on the CFG batch of 2 sequences: per layer, the
// q/k/v/out projections 4 x 2*154*32*32, the MLP 2 x 2*154*32*37, and attention QK^T + PV 4*2*77*77*32.
TEST(BenchCli, CountsTextEncoderFlopsFromItsShapes) {
  KK_REQUIRE_GOLDEN();
  const BenchRun one = run_bench({"--model", tiny_model(), "--threads", "1"});
  const BenchRun two = run_bench({"--model", tiny_model(), "--threads", "1", "--batch", "2"});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  ASSERT_EQ(two.exit_code, 0) << two.err;
  const double per_layer = 4 * 2.0 * 154 * 32 * 32 + 2 * 2.0 * 154 * 32 * 37 + 4.0 * 2 * 77 * 77 * 32;
  EXPECT_DOUBLE_EQ(one.json["gflop_text_encoder"].get<double>() * 1e9, 2 * per_layer);
  EXPECT_DOUBLE_EQ(two.json["gflop_text_encoder"].get<double>() * 1e9, 4 * per_layer);
  // Twice the images: twice the UNet and VAE work (the time embedding, on one timestep, does not grow).
  EXPECT_NEAR(two.json["gflop_unet_step"].get<double>() / one.json["gflop_unet_step"].get<double>(), 2.0, 0.02);
  EXPECT_NEAR(two.json["gflop_vae_decode"].get<double>() / one.json["gflop_vae_decode"].get<double>(), 2.0, 1e-9);
  EXPECT_NE(two.out.find("| UNet step (batch 4) |"), std::string::npos) << two.out;
}

TEST(BenchCli, StepsRunAndTimeAWholeLoop) {
  KK_REQUIRE_GOLDEN();
  const BenchRun r = run_bench({"--model", tiny_model(), "--threads", "2", "--steps", "3", "--scheduler", "heun",
                                "--dtype", "fp16", "--attention", "flash", "--height", "32", "--width", "48"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| total (measured: 3 steps, HeunDiscreteScheduler) |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("32x48"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mean of the loop's 5 UNet passes"), std::string::npos) << r.out;  // Heun: 2 per step, 1st once
  ASSERT_TRUE(r.json.is_object()) << r.out;
  for (const char* key : kPositiveKeys) EXPECT_GT(r.json.value(key, 0.0), 0.0) << key;
  EXPECT_EQ(r.json["total_measured"], true);
  EXPECT_EQ(r.json["steps"], 3);
  EXPECT_EQ(r.json["dtype"], "fp16");
  EXPECT_EQ(r.json["attention"], "flash");
  EXPECT_EQ(r.json["scheduler"], "HeunDiscreteScheduler");
  // A measured total covers at least the text encoder, five UNet passes and the decode.
  EXPECT_GE(r.json["total_s"].get<double>(), r.json["text_encoder_s"].get<double>() +
                                                 5 * r.json["unet_step_s"].get<double>() +
                                                 r.json["vae_decode_s"].get<double>() - 1e-9);
}

TEST(BenchCli, StrengthTimesAnImageToImageRunWithItsEncoder) {
  KK_REQUIRE_GOLDEN();
  const BenchRun r = run_bench({"--model", tiny_model(), "--threads", "2", "--steps", "10", "--strength", "0.75"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| VAE encode (image-to-image) |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mean of the loop's 8 UNet passes"), std::string::npos) << r.out;  // PNDM: 11 - 3
  ASSERT_TRUE(r.json.is_object()) << r.out;
  EXPECT_EQ(r.json["strength"], 0.75);
  EXPECT_GT(r.json.value("vae_encode_s", 0.0), 0.0);
  EXPECT_GT(r.json.value("gflop_vae_encode", 0.0), 0.0);
  EXPECT_GE(r.json["total_s"].get<double>(), r.json["text_encoder_s"].get<double>() +
                                                 r.json["vae_encode_s"].get<double>() +
                                                 8 * r.json["unet_step_s"].get<double>() +
                                                 r.json["vae_decode_s"].get<double>() - 1e-9);
  const BenchRun bad = run_bench({"--model", tiny_model(), "--strength", "1.5"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--strength"), std::string::npos) << bad.err;
}

// --cuda-graphs is in the JSON (on by default); the CPU does not capture, so nothing is replayed there.
TEST(BenchCli, CudaGraphsSettingIsReported) {
  KK_REQUIRE_GOLDEN();
  for (const char* setting : {"on", "off"}) {
    const BenchRun r = run_bench({"--model", tiny_model(), "--threads", "2", "--steps", "2", "--cuda-graphs", setting});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_TRUE(r.json.is_object()) << r.out;
    EXPECT_EQ(r.json["cuda_graphs"], std::string(setting) == "on") << setting;
    EXPECT_EQ(r.json["graph_replays"], 0) << setting;
    EXPECT_FALSE(r.json.contains("graph_gave_up")) << setting;
  }
}

// --profile: one more UNet pass op by op; the JSON's rows are the costliest first, the UNet's heavy ops are
// among them, and their times add up to at most the total it reports.
TEST(BenchCli, ProfileReportsTheUNetsOpsCostliestFirst) {
  KK_REQUIRE_GOLDEN();
  const BenchRun r = run_bench({"--model", tiny_model(), "--threads", "2", "--profile"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(r.json.is_object()) << r.out;
  ASSERT_TRUE(r.json.contains("op_profile")) << r.out;
  const auto& rows = r.json["op_profile"];
  ASSERT_FALSE(rows.empty());
  double sum = 0, previous = 1e300;
  bool conv = false, attention = false;
  for (const auto& row : rows) {
    const double ms = row["ms"];
    EXPECT_LE(ms, previous) << row.dump();
    EXPECT_GE(row["calls"].get<int>(), 1) << row.dump();
    previous = ms;
    sum += ms;
    conv = conv || row["op"].get<std::string>().rfind("conv2d ", 0) == 0;
    attention = attention || row["op"].get<std::string>().rfind("attention ", 0) == 0;
  }
  EXPECT_TRUE(conv && attention) << rows.dump();
  EXPECT_LE(sum, r.json["op_profile_ms"].get<double>() * (1 + 1e-9));
  EXPECT_NE(r.err.find("unet op profile:"), std::string::npos);
  EXPECT_FALSE(run_bench({"--model", tiny_model(), "--threads", "2"}).json.contains("op_profile"));
}

// The fast recipe's flags: LCM, guidance 1 (no CFG: the UNet runs the batch alone) and a TAESD as the VAE.
TEST(BenchCli, LcmWithoutGuidanceAndATinyVae) {
  KK_REQUIRE_GOLDEN();
  const std::string taesd = std::string(KAKUSAN_SOURCE_DIR) + "/tests/golden/taesd/tiny-taesd";
  const BenchRun r = run_bench({"--model", tiny_model(), "--threads", "2", "--steps", "4", "--scheduler",
                                "LCMScheduler", "--guidance", "1", "--vae", taesd});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| UNet step (batch 1) |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| total (measured: 4 steps, LCMScheduler) |"), std::string::npos) << r.out;
  ASSERT_TRUE(r.json.is_object()) << r.out;
  EXPECT_EQ(r.json["vae_class"], "AutoencoderTiny");
  EXPECT_EQ(r.json["guidance"], 1.0);
  const BenchRun cfg = run_bench({"--model", tiny_model(), "--threads", "2"});
  ASSERT_EQ(cfg.exit_code, 0) << cfg.err;
  EXPECT_EQ(cfg.json["vae_class"], "AutoencoderKL");
  // Without CFG the UNet and text encoder run half the sequences.
  EXPECT_NEAR(cfg.json["gflop_unet_step"].get<double>() / r.json["gflop_unet_step"].get<double>(), 2.0, 0.02);
  EXPECT_NEAR(cfg.json["gflop_text_encoder"].get<double>() / r.json["gflop_text_encoder"].get<double>(), 2.0, 1e-9);
}

TEST(BenchCli, BadRequestsExitTwoWithAMessage) {
  KK_REQUIRE_GOLDEN();
  const std::pair<std::vector<std::string>, const char*> cases[] = {
      {{"--model", tiny_model(), "--dtype", "fp8"}, "--dtype"},
      {{"--model", tiny_model(), "--attention", "fast"}, "--attention"},
      {{"--model", tiny_model(), "--cuda-graphs", "maybe"}, "--cuda-graphs"},
      {{"--model", tiny_model(), "--height", "60"}, "multiples of 8"},
      {{"--model", tiny_model(), "--steps", "2", "--scheduler", "nonsense"}, "unknown scheduler"},
      {{"--model", "/nonexistent/kakusan-model"}, "/nonexistent/kakusan-model"},
      {{"--model", tiny_model(), "--vae", "/nonexistent/kakusan-vae"}, "/nonexistent/kakusan-vae"},
  };
  for (const auto& [args, message] : cases) {
    const BenchRun r = run_bench(args);
    EXPECT_EQ(r.exit_code, 2) << joined(args);
    EXPECT_NE(r.err.find(message), std::string::npos) << joined(args) << ": " << r.err;
    EXPECT_EQ(r.out, "") << joined(args);
  }
}

}  // namespace
}  // namespace kakusan
