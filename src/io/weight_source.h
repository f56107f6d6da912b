// WeightSource: the tensors of one model component by diffusers state-dict name, wherever they come from.
//
// A source yields a view of each tensor, what keeps that memory alive, and whether the memory is a page of a
// file mapping (released by MappedFile::drop_pages() and faulted back from the file on the next read) or an
// owned copy (which page dropping never touches). Sources compose: the files of a diffusers folder
// (WeightStore), a rename/reshape table over another source (RenamedSource: single-file checkpoints), fused
// tensors split into parts (SplitSource), owned tensors replacing some names (OverlaySource: LoRA-merged
// weights). The one weight walk (nn/weights.h) binds a model's parameters from any of them.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/mapped_file.h"

namespace kakusan {

// One tensor of a source.
struct WeightRef {
  TensorView view;                     // contiguous, host memory, read only
  std::shared_ptr<const void> owner;   // keeps view.data alive
  bool mapped = false;                 // view.data lies in a file mapping (see MappedFile::drop_pages)
  std::string file;                    // the file it comes from, for messages
  // How that file holds it when not simply under its diffusers name, for messages: "'q.weight' reshaped from
  // [4, 4, 1, 1]", "rows [0, 16) of 'in_proj_weight'", "a merged copy". Empty otherwise.
  std::string stored_as;

  // "<file>: tensor '<name>'" or "<file>: <stored_as>" for messages.
  std::string describe(const std::string& name) const;
};

class WeightSource {
 public:
  virtual ~WeightSource() = default;

  // The tensor called `name` (a diffusers name), or nullopt when this source has none.
  virtual std::optional<WeightRef> get(const std::string& name) const = 0;
  // Every name get() answers, sorted (a loader reports those it did not use).
  virtual std::vector<std::string> names() const = 0;
  // The file mappings the views borrow from (what page dropping releases).
  virtual std::vector<std::shared_ptr<const MappedFile>> mapped_files() const = 0;
  // For messages: "unet/diffusion_pytorch_model.safetensors", "N files in DIR", ...
  virtual std::string describe() const = 0;
  // For messages: the name the file gives, or would give, the tensor called `name` when its layout renames
  // tensors (a single-file checkpoint: "model.diffusion_model.input_blocks.1.0.in_layers.2.weight"), also for
  // a tensor the file lacks; nullopt where names are diffusers' own.
  virtual std::optional<std::string> stored_name(const std::string& name) const {
    (void)name;
    return std::nullopt;
  }

  // Names a loader may leave unused without complaint (buffers that old files carry).
  static bool is_ignorable(const std::string& name);

 protected:
  WeightSource() = default;
  WeightSource(WeightSource&&) = default;
  WeightSource& operator=(WeightSource&&) = default;
  WeightSource(const WeightSource&) = delete;
  WeightSource& operator=(const WeightSource&) = delete;
};

}  // namespace kakusan
