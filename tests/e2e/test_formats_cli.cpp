// Checkpoint formats end to end (issue 17): `kakusan convert` round trips, `kakusan inspect` naming what a
// file is, and a hostile corpus (LoRA, embedding, single file: wrong shapes, unknown keys, rank mismatch, NaN
// alpha, truncated, pickle) each refused with a one-line error, exit code 2 and no image written.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "core/tensor.h"
#include "io/png.h"
#include "io/safetensors.h"
#include "io/scratch_dir.h"
#include "support/child_process.h"
#include "support/golden.h"

namespace kakusan {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

RunResult run_cli(const std::vector<std::string>& args) {
  const ScratchDir logs;
  testing::ChildProcess child(KAKUSAN_CLI_PATH, args, logs.path());
  const testing::ChildEnd end = child.wait(std::chrono::minutes(2), std::chrono::milliseconds(5));
  RunResult r;
  r.exit_code = end.status && WIFEXITED(*end.status) ? WEXITSTATUS(*end.status) : -1;
  r.out = child.stdout_text();
  r.err = child.stderr_text();
  return r;
}

fs::path kit(const std::string& relative) { return *testing::golden_dir() / relative; }
fs::path formats(const std::string& file) { return fs::path(KAKUSAN_SOURCE_DIR) / "tests/golden/formats" / file; }

std::string bytes_of(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every tensor of `a` is in `b` with the same dtype, shape and bytes, and nothing else is.
void expect_same_tensors(const fs::path& a, const fs::path& b) {
  const SafetensorsFile fa = SafetensorsFile::open(a), fb = SafetensorsFile::open(b);
  ASSERT_EQ(fa.entries().size(), fb.entries().size()) << a << " vs " << b;
  for (const SafetensorsFile::Entry& e : fa.entries()) {
    ASSERT_TRUE(fb.contains(e.name)) << e.name;
    const TensorView va = fa.view(e.name), vb = fb.view(e.name);
    ASSERT_TRUE(va.dtype == vb.dtype && va.shape == vb.shape) << e.name;
    EXPECT_EQ(std::memcmp(va.data, vb.data, e.end - e.begin), 0) << e.name;
  }
}

TEST(ConvertCli, FolderToSingleFileAndBackIsTensorForTensor) {
  KK_REQUIRE_GOLDEN();
  for (const char* model : {"tiny-sd", "tiny-sd-v"}) {
    SCOPED_TRACE(model);
    const ScratchDir dir;
    const std::string file = (dir / "model.safetensors").string(), back = (dir / "back").string();
    ASSERT_EQ(run_cli({"convert", kit(model).string(), file}).exit_code, 0);
    const RunResult r = run_cli({"convert", file, back, "--config", kit(model).string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    expect_same_tensors(kit(std::string(model) + "/unet/diffusion_pytorch_model.safetensors"),
                        dir / "back/unet/diffusion_pytorch_model.safetensors");
    expect_same_tensors(kit(std::string(model) + "/vae/diffusion_pytorch_model.safetensors"),
                        dir / "back/vae/diffusion_pytorch_model.safetensors");
    expect_same_tensors(kit(std::string(model) + "/text_encoder/model.safetensors"),
                        dir / "back/text_encoder/model.safetensors");
    // And the folder written back converts to the same file, byte for byte.
    ASSERT_EQ(run_cli({"convert", back, (dir / "again.safetensors").string()}).exit_code, 0);
    EXPECT_EQ(bytes_of(file), bytes_of(dir / "again.safetensors"));
    // Converting onto an existing output is refused and leaves it alone.
    const RunResult again = run_cli({"convert", file, back, "--config", kit(model).string()});
    EXPECT_EQ(again.exit_code, 2);
    EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;
  }
}

TEST(ConvertCli, Fp16HalvesTheFile) {
  KK_REQUIRE_GOLDEN();
  const ScratchDir dir;
  const std::string out = (dir / "f16.safetensors").string();
  ASSERT_EQ(run_cli({"convert", kit("tiny-sd").string(), out, "--dtype", "fp16"}).exit_code, 0);
  const SafetensorsFile f = SafetensorsFile::open(dir / "f16.safetensors");
  for (const SafetensorsFile::Entry& e : f.entries()) ASSERT_EQ(e.dtype, DType::F16) << e.name;
}

TEST(InspectCli, TellsWhatAFileIs) {
  KK_REQUIRE_GOLDEN();
  const ScratchDir dir;
  ASSERT_EQ(run_cli({"convert", kit("tiny-sd").string(), (dir / "sd.safetensors").string()}).exit_code, 0);
  const std::pair<fs::path, std::vector<const char*>> cases[] = {
      {dir / "sd.safetensors", {"Stable Diffusion 1.x single-file checkpoint", "epsilon"}},
      {formats("lora_kohya.safetensors"), {"LoRA (kohya format)", "unet (19 layers)", "rank 4", "alpha 8"}},
      {formats("lora_peft_b.safetensors"), {"LoRA (peft format)", "rank 2"}},
      {formats("embedding_diffusers.safetensors"), {"textual-inversion embedding", "'<kk-one>'", "1 vector"}},
      {formats("embedding_a1111.safetensors"), {"A1111", "2 vectors of width 32"}},
  };
  for (const auto& [file, wants] : cases) {
    const RunResult r = run_cli({"inspect", file.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const char* want : wants)
      EXPECT_NE(r.out.find(want), std::string::npos) << want << " in " << r.out.substr(0, 300);
  }
}

// ---- hostile files ----

Tensor filled(Shape shape, float value) { return Tensor::full(std::move(shape), value); }

// A kohya LoRA of one layer of tiny-sd's UNet (to_q of the first attention: 32 -> 32) with the given tensors.
fs::path kohya_file(const ScratchDir& dir, const std::string& name, Shape down, Shape up, float alpha,
                    const std::string& extra_key = "") {
  const std::string stem = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
  Tensor d = filled(std::move(down), 0.01f), u = filled(std::move(up), 0.01f), a = filled(Shape{}, alpha);
  std::vector<std::pair<std::string, TensorView>> tensors = {
      {stem + ".lora_down.weight", d.view()}, {stem + ".lora_up.weight", u.view()}, {stem + ".alpha", a.view()}};
  if (!extra_key.empty()) tensors.emplace_back(extra_key, a.view());
  const fs::path path = dir / name;
  write_safetensors(path, tensors);
  return path;
}

// Exit code 2, the error (after any progress lines) names `want` on one line, nothing written. The weight
// walk's report for a diffusers folder lists every missing / mis-shaped tensor, one a line: `one_line` false.
void expect_refused(const std::vector<std::string>& args, const std::string& want, const fs::path& output,
                    bool one_line = true) {
  const RunResult r = run_cli(args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(want), std::string::npos) << "expected '" << want << "' in: " << r.err;
  const size_t at = r.err.find("kakusan: error:");
  ASSERT_NE(at, std::string::npos) << r.err;
  if (one_line) {
    EXPECT_LE(std::count(r.err.begin() + at, r.err.end(), '\n'), 1) << "not one line: " << r.err;
  }
  EXPECT_FALSE(fs::exists(output)) << output << " was written";
}

std::vector<std::string> generate_args(const fs::path& model, const fs::path& output) {
  return {"generate", "--model", model.string(), "--prompt", "a cat", "--steps", "2", "--output", output.string()};
}

TEST(HostileFormats, LoraFilesAreRefusedWithOneLine) {
  KK_REQUIRE_GOLDEN();
  const ScratchDir dir;
  const fs::path png = dir / "out.png";
  const std::pair<fs::path, std::string> cases[] = {
      {kohya_file(dir, "shape.safetensors", {4, 33}, {32, 4}, 4), "does not fit"},
      {kohya_file(dir, "rank.safetensors", {4, 32}, {32, 3}, 4), "disagree on the rank"},
      {kohya_file(dir, "nan.safetensors", {4, 32}, {32, 4}, std::nanf("")), "alpha' is nan"},
      {kohya_file(dir, "inf.safetensors", {4, 32}, {32, 4}, std::numeric_limits<float>::infinity()), "is inf"},
      {kohya_file(dir, "unknown.safetensors", {4, 32}, {32, 4}, 4, "model.foo.weight"), "'model.foo.weight'"},
      {kohya_file(dir, "scalar.safetensors", {4}, {32, 4}, 4), "not a float matrix"},
  };
  for (const auto& [file, want] : cases) {
    SCOPED_TRACE(file.filename().string());
    std::vector<std::string> args = generate_args(kit("tiny-sd"), png);
    args.insert(args.end(), {"--lora", file.string()});
    expect_refused(args, want, png);
  }
  // Truncated: the header promises more bytes than the file holds.
  const std::string whole = bytes_of(formats("lora_kohya.safetensors"));
  std::ofstream(dir / "truncated.safetensors", std::ios::binary) << whole.substr(0, whole.size() / 2);
  std::vector<std::string> args = generate_args(kit("tiny-sd"), png);
  args.insert(args.end(), {"--lora", (dir / "truncated.safetensors").string()});
  expect_refused(args, "truncated.safetensors", png);
  // A LoRA for another model (tiny-sd-v's layers are 16 wide).
  args = generate_args(kit("tiny-sd-v"), png);
  args.insert(args.end(), {"--lora", formats("lora_peft.safetensors").string()});
  expect_refused(args, "does not fit", png);
}

TEST(HostileFormats, EmbeddingsAreRefusedWithOneLine) {
  KK_REQUIRE_GOLDEN();
  const ScratchDir dir;
  const fs::path png = dir / "out.png";
  Tensor nan = filled({1, 32}, std::nanf("")), wide = filled({2, 48}, 0.1f), two = filled({1, 32}, 0.1f);
  write_safetensors(dir / "nan.safetensors", {{"<x>", nan.view()}});
  write_safetensors(dir / "wide.safetensors", {{"<x>", wide.view()}});
  write_safetensors(dir / "two.safetensors", {{"<x>", two.view()}, {"<y>", two.view()}});
  const std::pair<std::string, std::string> cases[] = {
      {(dir / "nan.safetensors").string(), "non-finite"},
      {(dir / "wide.safetensors").string(), "width 48"},
      {(dir / "two.safetensors").string(), "found 2 tensors"},
      {formats("embedding_diffusers.safetensors").string() + ":cat</w>", "already in the tokenizer's vocabulary"},
  };
  for (const auto& [arg, want] : cases) {
    std::vector<std::string> args = generate_args(kit("tiny-sd"), png);
    args.insert(args.end(), {"--embedding", arg});
    expect_refused(args, want, png);
  }
}

TEST(HostileFormats, SingleFilesAreRefusedWithOneLine) {
  KK_REQUIRE_GOLDEN();
  const ScratchDir dir;
  const fs::path png = dir / "out.png", file = dir / "sd.safetensors";
  ASSERT_EQ(run_cli({"convert", kit("tiny-sd").string(), file.string()}).exit_code, 0);
  const std::string whole = bytes_of(file);
  std::ofstream(dir / "truncated.safetensors", std::ios::binary) << whole.substr(0, whole.size() - 1000);
  // One UNet tensor left out.
  // One UNet tensor left out, or of the wrong shape.
  const std::string conv1 = "model.diffusion_model.input_blocks.1.0.in_layers.2.weight";
  const SafetensorsFile original = SafetensorsFile::open(file);
  std::vector<std::pair<std::string, TensorView>> kept;
  for (const SafetensorsFile::Entry& e : original.entries())
    if (e.name != conv1) kept.emplace_back(e.name, original.view(e.name));
  write_safetensors(dir / "missing.safetensors", kept);
  const Tensor narrow = filled({16, 32, 3, 3}, 0.1f);
  kept.emplace_back(conv1, narrow.view());
  write_safetensors(dir / "misshapen.safetensors", kept);
  std::ofstream(dir / "model.ckpt", std::ios::binary) << std::string("\x80\x02}q\x00.", 6);
  const std::string config = kit("tiny-sd").string();
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{"--model", (dir / "truncated.safetensors").string(), "--config", config}, "truncated.safetensors"},
      {{"--model", (dir / "missing.safetensors").string(), "--config", config},
       "tensor 'down_blocks.0.resnets.0.conv1.weight' (the file's '" + conv1 + "') is missing"},
      {{"--model", (dir / "misshapen.safetensors").string(), "--config", config},
       "tensor 'down_blocks.0.resnets.0.conv1.weight' (tensor '" + conv1 +
           "') has shape [16, 32, 3, 3] but the config implies [32, 32, 3, 3]"},
      {{"--model", (dir / "model.ckpt").string()}, "pickle"},
      {{"--model", formats("lora_kohya.safetensors").string()}, "not a Stable Diffusion single-file checkpoint"},
  };
  for (const auto& [model_args, want] : cases) {
    std::vector<std::string> args = {"generate", "--prompt", "a cat", "--steps", "2", "--output", png.string()};
    args.insert(args.end(), model_args.begin(), model_args.end());
    expect_refused(args, want, png);
  }
}

}  // namespace
}  // namespace kakusan

namespace kakusan {
namespace {

TEST(LoraTagsCli, ATagGivesTheImageOfItsLoraFlag) {
  KK_REQUIRE_GOLDEN();
  const ScratchDir dir;
  std::vector<std::string> tagged = generate_args(kit("tiny-sd"), dir / "tag.png");
  tagged[4] = "a cat <lora:lora_kohya:0.8>";
  tagged.insert(tagged.end(), {"--lora-dir", formats("").string()});
  std::vector<std::string> flagged = generate_args(kit("tiny-sd"), dir / "flag.png");
  flagged.insert(flagged.end(), {"--lora", formats("lora_kohya.safetensors").string() + ":0.8"});
  const std::vector<std::string> plain = generate_args(kit("tiny-sd"), dir / "base.png");
  for (std::vector<std::string> args : {tagged, flagged, plain}) {
    args.insert(args.end(), {"--seed", "3"});
    const RunResult r = run_cli(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  const Image tag = read_png(dir / "tag.png").image, flag = read_png(dir / "flag.png").image;
  EXPECT_TRUE(tag.rgb == flag.rgb) << "<lora:lora_kohya:0.8> differs from --lora lora_kohya.safetensors:0.8";
  EXPECT_FALSE(tag.rgb == read_png(dir / "base.png").image.rgb);
  // The PNG keeps the prompt as written, tag included (as A1111's infotext does).
  EXPECT_NE(read_png(dir / "tag.png").text.at(0).second.find("<lora:lora_kohya:0.8>"), std::string::npos);
}

TEST(LoraTagsCli, BadTagsAndFoldersAreRefusedWithOneLine) {
  KK_REQUIRE_GOLDEN();
  const ScratchDir dir;
  const fs::path png = dir / "out.png";
  const std::string folder = formats("").string();
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{"--prompt", "x <lora:lora_kohya:0.8>"}, "no LoRA folder was given (--lora-dir)"},
      {{"--prompt", "x <lora:lora_kohya:0.8>", "--lora-dir", formats("lora_kohya.safetensors").string()},
       "is not a folder"},
      {{"--prompt", "x <lora:../formats/lora_kohya>", "--lora-dir", folder}, "must be a file name"},
      {{"--prompt", "x <lora:missing:1>", "--lora-dir", folder}, "no LoRA of that name"},
      {{"--prompt", "x <lora:lora_kohya:nan>", "--lora-dir", folder}, "not a finite number"},
      {{"--prompt", "x <lora:lora_kohya:1", "--lora-dir", folder}, "not closed"},
      {{"--prompt", "x <lora:lora_kohya>", "--prompt", "y", "--lora-dir", folder}, "different <lora:...> tags"},
      {{"--prompt", "x <lora:lora_kohya:1e30>", "--lora-dir", folder, "--dtype", "fp16"}, "F16 cannot hold"},
  };
  for (const auto& [extra, want] : cases) {
    std::vector<std::string> args = {"generate", "--model", kit("tiny-sd").string(), "--steps", "2", "--output",
                                     png.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    expect_refused(args, want, png);
  }
}

}  // namespace
}  // namespace kakusan
