// kakusan convert IN OUT: a single-file checkpoint (.safetensors, original layout) to a diffusers folder, or a
// diffusers folder to a single file; --dtype casts every floating tensor. Bad input: one-line error, exit 2,
// nothing written.
#include <filesystem>
#include <memory>

#include "command.h"
#include "core/error.h"
#include "models/checkpoint_convert.h"

namespace kakusan::cli {
namespace {

namespace fs = std::filesystem;

struct ConvertOptions {
  std::string in, out, dtype = "auto", config, tokenizer;
};

std::optional<DType> convert_dtype(const std::string& text) {
  if (text == "auto") return std::nullopt;
  if (text == "fp32") return DType::F32;
  if (text == "fp16") return DType::F16;
  if (text == "bf16") return DType::BF16;
  fail("--dtype must be auto, fp32, fp16 or bf16, not '", text, "'");
}

int run_convert(const ConvertOptions& o) {
  const std::optional<DType> dtype = convert_dtype(o.dtype);
  KK_CHECK(!fs::exists(o.out), o.out, " already exists (convert never overwrites)");
  if (fs::is_regular_file(o.in)) {
    SingleFileOptions options;
    if (!o.config.empty()) options.config = o.config;
    if (!o.tokenizer.empty()) options.tokenizer = o.tokenizer;
    convert_single_file_to_folder(SingleFileCheckpoint::open(o.in, options), o.out, dtype);
  } else {
    KK_CHECK(fs::is_directory(o.in), o.in, ": no such file or folder");
    KK_CHECK(o.config.empty() && o.tokenizer.empty(), "--config / --tokenizer apply to a single-file input");
    KK_CHECK(fs::path(o.out).extension() == ".safetensors", o.out, ": a single file must be named *.safetensors");
    convert_folder_to_single_file(o.in, o.out, dtype);
  }
  std::printf("wrote %s\n", o.out.c_str());
  return 0;
}

const bool registered = register_command({
    "convert",
    "Convert a single-file checkpoint (.safetensors) to a diffusers folder, or a folder to a single file",
    [](CLI::App& app) -> std::function<int()> {
      auto o = std::make_shared<ConvertOptions>();
      app.add_option("in", o->in, "single-file .safetensors or diffusers model folder")->required();
      app.add_option("out", o->out, "the folder or .safetensors file to write (must not exist)")->required();
      app.add_option("--dtype", o->dtype, "auto (as stored) | fp32 | fp16 | bf16")->capture_default_str();
      app.add_option("--config", o->config, "single file: diffusers folder or model id whose configs to use");
      app.add_option("--tokenizer", o->tokenizer, "single file: tokenizer folder to copy into the output");
      return [o] { return run_convert(*o); };
    },
});

}  // namespace
}  // namespace kakusan::cli
