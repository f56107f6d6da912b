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
  StepKey key;
  for (const TensorView* v : {&input, &t, &noise_pred}) add_to_key(key, *v);
  if (layout_) layout_(key);
  if (graph_ && key == graph_key_) {
    if (graph_->replay()) {
      ++replays_;
      return;
    }
    // The backend's scratch moved (another pipeline on the device grew or released it): warm up again.
    warm_key_.clear();
  }
  graph_.reset();
  if (can_capture_ && key == warm_key_ && capture(input, t, noise_pred)) {
    graph_key_ = std::move(key);
    return;
  }
  model_(input, t, noise_pred);
  ++eager_;
  warm_key_ = std::move(key);
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
