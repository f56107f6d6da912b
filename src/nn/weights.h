// One walk over a model's parameters, with their diffusers state-dict names.
//
// Every module has `void visit(WeightVisitor& v)` that names its tensors (v("weight", weight, shape)) and
// its children (v.child("to_q", to_q)). The same walk loads a checkpoint (WeightLoader), counts parameters,
// and writes random-weight models; a module's layout is written exactly once.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "io/weight_source.h"
#include "io/weight_store.h"  // the usual source; callers of load_weights rely on it

namespace kakusan {

class WeightVisitor {
 public:
  virtual ~WeightVisitor() = default;

  // Called once per parameter: `name` is the full dotted name, `shape` what the config implies.
  virtual void tensor(const std::string& name, Tensor& param, const Shape& shape) = 0;

  void operator()(std::string_view leaf, Tensor& param, const Shape& shape) { tensor(full_name(leaf), param, shape); }

  template <typename Module>
  void child(std::string_view name, Module& module) {
    const size_t saved = prefix_.size();
    prefix_.append(name).push_back('.');
    module.visit(*this);
    prefix_.resize(saved);
  }
  template <typename Module>
  void child(int index, Module& module) {
    child(std::to_string(index), module);
  }
  // Visits each element of a list as name.0, name.1, ...
  template <typename Module>
  void children(std::string_view name, std::vector<Module>& modules) {
    const size_t saved = prefix_.size();
    prefix_.append(name).push_back('.');
    for (size_t i = 0; i < modules.size(); ++i) child(int(i), modules[i]);
    prefix_.resize(saved);
  }

  std::string full_name(std::string_view leaf) const { return prefix_ + std::string(leaf); }

 private:
  std::string prefix_;
};

// Binds parameters to a weight source. Matrices and convolution kernels (rank >= 2) are kept in
// `weight_dtype` (borrowed from the source when it already has that dtype: zero copy, a mapped file's pages
// or the source's owned copy); vectors (biases, norm scales) are converted to f32. Problems are collected and
// reported together by finish().
class WeightLoader : public WeightVisitor {
 public:
  WeightLoader(const WeightSource& source, DType weight_dtype) : source_(source), weight_dtype_(weight_dtype) {}

  void tensor(const std::string& name, Tensor& param, const Shape& shape) override;

  // Throws one Error listing every missing, mis-shaped and unexpected tensor (with `component` as context).
  // A source that renames tensors (a single file) gets a one-line Error instead, naming the first such tensor
  // by its diffusers name and the file's.
  void finish(const std::string& component) const;

  // Bytes of the bound parameters that borrow a file mapping (released by page dropping, faulted back on the
  // next read), and bytes held in owned memory (converted copies, a source's owned copies).
  int64_t mapped_bytes() const { return mapped_bytes_; }
  int64_t owned_bytes() const { return owned_bytes_; }
  // Whether every visited parameter was found and fitted (finish() also reports unused source names).
  bool bound_all() const { return missing_.empty() && mismatched_.empty(); }

 private:
  const WeightSource& source_;
  DType weight_dtype_;
  int64_t mapped_bytes_ = 0;
  int64_t owned_bytes_ = 0;
  std::vector<std::string> used_;
  std::vector<std::string> missing_;
  std::vector<std::string> mismatched_;
  // The first problem in walk order: the tensor, "is missing" / "has shape ...", how the source stores it.
  std::string first_problem_name_, first_problem_, first_stored_as_;
  std::vector<std::shared_ptr<const MappedFile>> files_;  // the source's mappings, once a tensor is converted
};

// Counts parameters (and checks that a module tree is fully described).
class ParameterCounter : public WeightVisitor {
 public:
  void tensor(const std::string& name, Tensor& param, const Shape& shape) override;
  int64_t tensors = 0;
  int64_t elements = 0;
};

// Loads `module` from `source`, throwing one error that lists all problems.
template <typename Module>
void load_weights(Module& module, const WeightSource& source, DType weight_dtype, const std::string& component) {
  WeightLoader loader(source, weight_dtype);
  module.visit(loader);
  loader.finish(component);
}

}  // namespace kakusan
