// Backend memory on the host backends: allocation in the backend's memory, upload and download as copies
// (converting between float dtypes), and the argument checks every backend shares.
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/null_backend.h"
#include "backend/profiling_backend.h"
#include "support/golden.h"

namespace kakusan {
namespace {

TEST(BackendMemory, HostBackendsAllocateHostMemoryAndCopy) {
  ProfilingBackend profiling(cpu_backend());
  for (Backend* be : {&cpu_backend(), &reference_backend(), static_cast<Backend*>(&profiling)}) {
    SCOPED_TRACE(be->name());
    EXPECT_TRUE(be->device().is_host());
    Tensor host = Tensor::empty({2, 3});
    for (int i = 0; i < 6; ++i) host.f32()[i] = float(i) + 0.25f;
    Tensor on_backend = be->empty({3, 2}, DType::F16);
    EXPECT_EQ(on_backend.device(), be->device());
    be->upload(host.view().permute({1, 0}), on_backend);  // strided source, converted to f16
    Tensor back = Tensor::empty({3, 2});
    be->download(on_backend, back);
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 2; ++c) EXPECT_EQ(back.f32()[r * 2 + c], host.f32()[c * 3 + r]);
  }
}

TEST(BackendMemory, TransfersCheckPlacementShapeAndDtype) {
  Backend& be = cpu_backend();
  Tensor a = Tensor::empty({4});
  Tensor b = Tensor::empty({5});
  EXPECT_THROW(be.upload(a, b), Error);
  Tensor ids = Tensor::empty({4}, DType::I64);
  EXPECT_THROW(be.upload(a, ids), Error);
  float elsewhere[4] = {};
  const TensorView device_view(elsewhere, DType::F32, Device::backend(1), Shape{4});
  try {
    be.download(device_view, a);
    FAIL() << "a view of another device's memory was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("device:1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(be.upload(a, b.view().as_strided({4}, {1}).narrow(0, 0, 2)), Error);
}

TEST(BackendMemory, NullBackendTransfersNothing) {
  NullBackend null;
  Tensor a = Tensor::full({4}, 1.0f);
  Tensor b = Tensor::full({4}, 2.0f);
  null.upload(a, b);
  null.download(a, b);
  EXPECT_EQ(b.f32()[0], 2.0f);
}

}  // namespace
}  // namespace kakusan
