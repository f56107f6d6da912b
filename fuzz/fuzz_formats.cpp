// Fuzzes the checkpoint-format loaders of issue 17 on one untrusted .safetensors file: the LoRA reader and its
// merge into a small model's weights, the single-file checkpoint's type detection and rename / split tables,
// the textual-inversion reader, and `kakusan inspect`'s description. Each must succeed or throw one
// kakusan::Error; a crash, a sanitizer report or another exception type is a finding.
//
// Input: the raw file (fuzz_safetensors covers the container itself; seeds: tests/golden/formats/*.safetensors
// and single files made by `kakusan convert`).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "io/lora_file.h"
#include "io/safetensors.h"
#include "io/weight_store.h"
#include "models/lora_merge.h"
#include "models/single_file.h"
#include "pipeline/checkpoint_kind.h"
#include "pipeline/textual_inversion.h"

namespace {

namespace fs = std::filesystem;
using namespace kakusan;

fs::path scratch() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("kakusan-fuzz-formats-" + std::to_string(::getpid()));
    fs::create_directories(d);
    // A base model for merges: a linear layer and a convolution under diffusers names kohya / PEFT keys map to.
    Tensor linear = Tensor::zeros(Shape{8, 8}), conv = Tensor::zeros(Shape{8, 4, 3, 3});
    write_safetensors(d / "base.safetensors", {{"down_blocks.0.attentions.0.proj_in.weight", linear.view()},
                                               {"down_blocks.0.resnets.0.conv1.weight", conv.view()}});
    return d;
  }();
  return dir;
}

template <typename F>
void expect_error_or_success(F&& f) {
  try {
    f();
  } catch (const Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unexpected exception type: %s\n", e.what());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (8u << 20)) return 0;
  const fs::path file = scratch() / "input.safetensors";
  std::ofstream(file, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), std::streamsize(size));
  expect_error_or_success([&] {
    const auto lora = std::make_shared<const LoraFile>(LoraFile::open(file));
    const auto base = std::make_shared<const WeightStore>(WeightStore::open({scratch() / "base.safetensors"}));
    for (const char* component : {"unet", "text_encoder"})
      merge_loras(base, component, {{lora, 0.5f}}, DType::F16);
  });
  expect_error_or_success([&] {
    const SingleFileCheckpoint ckpt = SingleFileCheckpoint::open(file);
    for (const ComponentSource* c : {&ckpt.unet(), &ckpt.vae(), &ckpt.text_encoder()})
      for (const std::string& name : c->weights->names()) c->weights->get(name);
  });
  expect_error_or_success([&] { read_textual_inversion(file, std::nullopt); });
  expect_error_or_success([&] { describe_checkpoint_file(file); });
  return 0;
}
