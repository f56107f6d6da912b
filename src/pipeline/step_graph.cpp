#include "pipeline/step_graph.h"

#include <utility>

#include "core/error.h"

namespace kakusan {

void add_to_key(StepKey& key, const TensorView& view) {
  key.push_back(reinterpret_cast<uintptr_t>(view.data));
  key.push_back(uint64_t(view.dtype));
  key.push_back(uint64_t(view.rank()));
  for (int d = 0; d < view.rank(); ++d) {
    key.push_back(uint64_t(view.shape[d]));
    key.push_back(uint64_t(view.strides[d]));
  }
}

StepGraph::StepGraph(Backend& backend, NoiseModel model, std::function<void(StepKey&)> layout)
    : backend_(backend), model_(std::move(model)), layout_(std::move(layout)) {}

StepGraph::~StepGraph() = default;

void StepGraph::operator()(const TensorView& input, const TensorView& t, const TensorView& noise_pred) {
  if (!can_capture_) {  // a host backend, or capturing given up for this loop: nothing to compare
    model_(input, t, noise_pred);
    ++eager_;
    return;
  }
  key_.clear();  // one buffer for every step's key: nothing allocated per step once it has grown
  for (const TensorView* v : {&input, &t, &noise_pred}) add_to_key(key_, *v);
  if (layout_) layout_(key_);
  if (graph_ && key_ == graph_key_) {
    if (graph_->replay()) {
      ++replays_;
      return;
    }
    // The backend's scratch moved (another pipeline on the device grew or released it): warm up again.
    warm_key_.clear();
  }
  graph_.reset();
  if (key_ == warm_key_ && capture(input, t, noise_pred)) {
    std::swap(graph_key_, key_);
    return;
  }
  model_(input, t, noise_pred);
  ++eager_;
  std::swap(warm_key_, key_);
}

bool StepGraph::capture(const TensorView& input, const TensorView& t, const TensorView& noise_pred) {
  try {
    if (!backend_.begin_capture()) {
      can_capture_ = false;
      return false;
    }
    model_(input, t, noise_pred);
    graph_ = backend_.end_capture();
  } catch (const Error& e) {
    // Nothing the model recorded ran: give capturing up for this loop and let the eager run compute the step
    // (an error that is not the capture's shows again there).
    backend_.abort_capture();
    can_capture_ = false;
    gave_up_ = e.what();
    return false;
  } catch (...) {
    backend_.abort_capture();
    throw;
  }
  ++captures_;
  if (!graph_->replay()) {  // cannot happen on one thread: nothing changed the scratch since the capture
    graph_.reset();
    return false;
  }
  return true;
}

}  // namespace kakusan
