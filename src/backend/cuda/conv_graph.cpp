// conv2d through cuDNN's graph (backend) API: per shape one operation graph
//   t = conv(x, w)      x, w in f16/bf16, computed in f32 into a virtual f32 tensor t
//   y = t + bias        a pointwise ADD in f32, bias [1, K, 1, 1] f32 broadcast; y f32
// or, without a bias, y = IDENTITY(t). The pointwise op is there in both cases because engines that fuse a
// pointwise epilogue are the ones that write an f32 output of half operands (a lone convolution's output takes
// its operands' dtype), so y is the contract's f32 result, rounded once.
//
// The plan is the first engine config that cuDNN's heuristic ranks (mode A, then its fallback list) whose
// numerical notes keep the contract (no reduced-precision accumulation, no FFT/Winograd transform, no
// down-converted inputs) and the results reproducible (no nondeterministic reduction: graphs on == off bit for
// bit), that finalizes, and whose workspace fits kConvWorkspaceLimit (the planner's cap).
// Any cuDNN refusal on the way is returned as the reason, for the caller's fallback to the descriptor API.
//
// Runtime-fusion engines may want NHWC tensors with channel counts that are multiples of 8; the backend's
// tensors are NCHW, so it asks for NCHW and lets a refusal fall back. The layout probe
// (tests/cuda/test_cuda_conv_probe.cpp) builds both layouts and says, on a GPU, which engines take which.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/plans.h"

// The graph's handle attributes are marked deprecated in cuDNN 9's latest headers (a device-property
// descriptor may replace them) but are required by its earlier 9.x releases, which the GPU machine may have.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace kakusan::cuda {

std::vector<int64_t> conv_strides(const std::vector<int64_t>& d, ConvLayout layout) {
  if (layout == ConvLayout::NCHW) return {d[1] * d[2] * d[3], d[2] * d[3], d[3], 1};
  return {d[1] * d[2] * d[3], 1, d[3] * d[1], d[1]};
}

namespace {

// The graph's tensors, as the variant pack names them.
constexpr int64_t kX = 1, kW = 2, kBias = 3, kY = 4, kConvOut = 5;

struct Destroy {
  void operator()(void* d) const { lib().cudnnBackendDestroyDescriptor(d); }
};
using Descriptor = std::unique_ptr<void, Destroy>;

Descriptor create(cudnnBackendDescriptorType_t type) {
  cudnnBackendDescriptor_t d = nullptr;
  check(lib().cudnnBackendCreateDescriptor(type, &d), "conv2d graph: create descriptor");
  return Descriptor(d);
}

void set(void* d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count,
         const void* values, const char* what) {
  check(lib().cudnnBackendSetAttribute(d, name, type, count, values), what);
}

void finalize(void* d, const char* what) { check(lib().cudnnBackendFinalize(d), what); }

class GraphBuilder {
 public:
  explicit GraphBuilder(CudaBackend::ConvGraphPlan& plan) : plan_(plan) {}

  // A descriptor the plan keeps alive (and destroys after the plan itself).
  void* make(cudnnBackendDescriptorType_t type) {
    plan_.owned.push_back(create(type).release());
    return plan_.owned.back();
  }

  void* tensor(int64_t uid, cudnnDataType_t type, const std::vector<int64_t>& dims,
               const std::vector<int64_t>& tensor_strides, bool is_virtual) {
    void* t = make(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    const int64_t alignment = 16;  // the caller checks every pointer for it
    const bool virtual_flag = is_virtual;
    set(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, "conv2d graph: tensor type");
    set(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, int64_t(dims.size()), dims.data(),
        "conv2d graph: tensor dimensions");
    set(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, int64_t(tensor_strides.size()), tensor_strides.data(),
        "conv2d graph: tensor strides");
    set(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "conv2d graph: tensor id");
    set(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment, "conv2d graph: tensor alignment");
    set(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virtual_flag, "conv2d graph: virtual tensor");
    finalize(t, "conv2d graph: tensor");
    return t;
  }

 private:
  CudaBackend::ConvGraphPlan& plan_;
};

// Whether an engine config's numerical notes keep backend.h's contract and give the same bits on every run.
bool keeps_contract(void* config) {
  Descriptor engine = create(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
  void* e = engine.get();
  int64_t count = 0;
  check(lib().cudnnBackendGetAttribute(config, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &count,
                                       &e),
        "conv2d graph: engine");
  cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
  check(lib().cudnnBackendGetAttribute(e, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                                       CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &count, notes),
        "conv2d graph: numerical notes");
  for (int64_t i = 0; i < std::min<int64_t>(count, CUDNN_NUMERICAL_NOTE_TYPE_COUNT); ++i) {
    switch (notes[i]) {
      case CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION:  // f16 accumulation
      case CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS:
      case CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC:
      case CUDNN_NUMERICAL_NOTE_FFT:
      case CUDNN_NUMERICAL_NOTE_WINOGRAD:
      case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_4x4:
      case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_6x6:
      case CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_13x13: return false;
      default: break;
    }
  }
  return true;
}

// The engine configs cuDNN's heuristic proposes for the graph in `mode`, best first.
std::vector<Descriptor> engine_configs(void* graph, cudnnBackendHeurMode_t mode) {
  Descriptor heuristic = create(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  set(heuristic.get(), CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph,
      "conv2d graph: heuristic");
  set(heuristic.get(), CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "conv2d graph: heuristic mode");
  finalize(heuristic.get(), "conv2d graph: heuristic");
  int64_t count = 0;
  check(lib().cudnnBackendGetAttribute(heuristic.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                       0, &count, nullptr),
        "conv2d graph: heuristic results");
  std::vector<Descriptor> configs;
  std::vector<void*> raw;
  for (int64_t i = 0; i < count; ++i) {
    configs.push_back(create(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
    raw.push_back(configs.back().get());
  }
  int64_t returned = 0;
  if (count > 0)
    check(lib().cudnnBackendGetAttribute(heuristic.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                         CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &returned, raw.data()),
          "conv2d graph: heuristic results");
  configs.resize(size_t(std::clamp<int64_t>(returned, 0, count)));
  return configs;
}

// The operation graph of the header's comment; its descriptors belong to `plan`.
void* build_graph(cudnnHandle_t dnn, const ConvShape& s, DType dtype, bool bias, ConvLayout layout,
                  CudaBackend::ConvGraphPlan& plan) {
  GraphBuilder b(plan);
  const cudnnDataType_t narrow = dnn_type(dtype), f32 = CUDNN_DATA_FLOAT;
  const std::vector<int64_t> x_dims{s.batch, s.channels, s.height, s.width},
      w_dims{s.out_channels, s.channels, s.kernel_h, s.kernel_w},
      y_dims{s.batch, s.out_channels, s.out_height(), s.out_width()}, bias_dims{1, s.out_channels, 1, 1};
  void* x = b.tensor(kX, narrow, x_dims, conv_strides(x_dims, layout), false);
  void* w = b.tensor(kW, narrow, w_dims, conv_strides(w_dims, layout), false);
  void* t = b.tensor(kConvOut, f32, y_dims, conv_strides(y_dims, layout), true);
  void* y = b.tensor(kY, f32, y_dims, conv_strides(y_dims, layout), false);

  void* conv = b.make(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
  const int64_t spatial = 2, pads[2] = {s.pad_h, s.pad_w}, unit[2] = {1, 1}, steps[2] = {s.stride, s.stride};
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  set(conv, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &spatial, "conv2d graph: spatial dims");
  set(conv, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32, "conv2d graph: compute type");
  set(conv, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode, "conv2d graph: mode");
  set(conv, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pads, "conv2d graph: padding");
  set(conv, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, pads, "conv2d graph: padding");
  set(conv, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, unit, "conv2d graph: dilations");
  set(conv, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, steps, "conv2d graph: strides");
  finalize(conv, "conv2d graph: convolution");

  void* fprop = b.make(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
  const float alpha = 1.0f, beta = 0.0f;
  set(fprop, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "conv2d graph: x");
  set(fprop, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &w, "conv2d graph: w");
  set(fprop, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t, "conv2d graph: y");
  set(fprop, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv,
      "conv2d graph: convolution");
  set(fprop, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha, "conv2d graph: alpha");
  set(fprop, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta, "conv2d graph: beta");
  finalize(fprop, "conv2d graph: convolution forward");

  void* pointwise = b.make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
  const cudnnPointwiseMode_t op = bias ? CUDNN_POINTWISE_ADD : CUDNN_POINTWISE_IDENTITY;
  set(pointwise, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &op, "conv2d graph: pointwise mode");
  set(pointwise, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &f32, "conv2d graph: pointwise math");
  finalize(pointwise, "conv2d graph: pointwise");

  void* epilogue = b.make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
  set(epilogue, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pointwise,
      "conv2d graph: pointwise op");
  set(epilogue, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t,
      "conv2d graph: pointwise x");
  if (bias) {
    void* bias_tensor = b.tensor(kBias, f32, bias_dims, {s.out_channels, 1, 1, 1}, false);
    set(epilogue, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &bias_tensor,
        "conv2d graph: bias");
  }
  set(epilogue, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y,
      "conv2d graph: pointwise y");
  finalize(epilogue, "conv2d graph: pointwise op");

  void* graph = b.make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  void* ops[2] = {fprop, epilogue};
  set(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 2, ops, "conv2d graph: operations");
  set(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &dnn, "conv2d graph: handle");
  finalize(graph, "conv2d graph: operation graph");
  return graph;
}

}  // namespace

std::unique_ptr<CudaBackend::ConvGraphPlan> make_conv_graph_plan(cudnnHandle_t dnn, const ConvShape& s, DType dtype,
                                                                 bool bias, ConvLayout layout, std::string& why) {
  KK_CHECK(dtype == DType::F16 || dtype == DType::BF16, "cuda conv2d: the graph API path is for f16/bf16, not ",
           dtype_name(dtype));
  auto plan = std::make_unique<CudaBackend::ConvGraphPlan>();
  plan->bias = bias;
  why = "no engine config (heuristic modes A and fallback)";
  try {
    void* graph = build_graph(dnn, s, dtype, bias, layout, *plan);
    for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
      std::vector<Descriptor> configs;
      try {
        configs = engine_configs(graph, mode);
      } catch (const Error& e) {
        why = e.what();
        continue;
      }
      for (Descriptor& config : configs) {
        if (!keeps_contract(config.get())) {
          why = "last engine config tried breaks the contract (f16 sums, a transform, down-conversion, nondeterminism)";
          continue;
        }
        Descriptor execution = create(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
        void* c = config.get();
        set(execution.get(), CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c,
            "conv2d graph: plan config");
        set(execution.get(), CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &dnn, "conv2d graph: plan handle");
        if (const cudnnStatus_t st = lib().cudnnBackendFinalize(execution.get()); st != CUDNN_STATUS_SUCCESS) {
          why = std::string("last engine config tried: plan finalize: cuDNN ") + lib().cudnnGetErrorString(st);
          continue;
        }
        int64_t workspace = 0, count = 0;
        check(lib().cudnnBackendGetAttribute(execution.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                             CUDNN_TYPE_INT64, 1, &count, &workspace),
              "conv2d graph: workspace size");
        if (workspace < 0 || size_t(workspace) > CudaBackend::kConvWorkspaceLimit) {
          why = "last engine config tried: workspace " + std::to_string(workspace) + " bytes over the cap";
          continue;
        }
        plan->workspace = size_t(workspace);
        plan->owned.push_back(config.release());
        plan->plan = execution.release();
        plan->owned.push_back(plan->plan);
        why.clear();
        return plan;
      }
    }
  } catch (const Error& e) {
    why = e.what();
  }
  return nullptr;
}

void run_conv_graph_plan(cudnnHandle_t dnn, const CudaBackend::ConvGraphPlan& plan, const void* x, const void* w,
                         const float* bias, float* y, void* workspace) {
  const int64_t ids[4] = {kX, kW, kY, kBias};
  void* pointers[4] = {const_cast<void*>(x), const_cast<void*>(w), y, const_cast<float*>(bias)};
  const int64_t count = plan.bias ? 4 : 3;
  // A variant pack is host memory only: made per call, nothing allocated on or synchronised with the device.
  Descriptor pack = create(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  set(pack.get(), CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, count, ids, "conv2d: variant pack");
  set(pack.get(), CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, count, pointers, "conv2d: variant pack");
  set(pack.get(), CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace, "conv2d: variant pack");
  finalize(pack.get(), "conv2d: variant pack");
  check(lib().cudnnBackendExecute(dnn, plan.plan, pack.get()), "conv2d");
}

}  // namespace kakusan::cuda
