// Backends by device name: the built-in kinds, registered ones, and the errors for the rest.
#include <gtest/gtest.h>

#include <algorithm>

#include "backend/registry.h"
#include "core/error.h"

namespace kakusan {
namespace {

std::string error_of(const std::string& spec) {
  try {
    backend_for_device(spec);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(BackendRegistry, BuiltInKinds) {
  EXPECT_EQ(&backend_for_device("cpu"), &cpu_backend());
  EXPECT_EQ(&backend_for_device("cpu:0"), &cpu_backend());
  EXPECT_EQ(&backend_for_device("reference"), &reference_backend());
}

TEST(BackendRegistry, RegisteredKindsGetTheirIndex) {
  int asked = -1;
  register_backend("test-kind", [&asked](int index) -> Backend& {
    asked = index;
    return reference_backend();
  });
  EXPECT_EQ(&backend_for_device("test-kind:3"), &reference_backend());
  EXPECT_EQ(asked, 3);
  const std::vector<std::string> kinds = backend_kinds();
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "test-kind"), kinds.end());
}

TEST(BackendRegistry, ClearErrors) {
  // "cpu, cuda, reference" where the CUDA backend is built in.
  EXPECT_NE(error_of("tpu").find("device \"tpu\" is unknown (devices: cpu, "), std::string::npos)
      << error_of("tpu");
  EXPECT_NE(error_of("cpu:1").find("one CPU device"), std::string::npos) << error_of("cpu:1");
  EXPECT_NE(error_of("cpu:x").find("must be a number"), std::string::npos) << error_of("cpu:x");
  EXPECT_NE(error_of("cpu:").find("must be a number"), std::string::npos) << error_of("cpu:");
  const std::vector<std::string> kinds = backend_kinds();
  if (std::find(kinds.begin(), kinds.end(), "cuda") == kinds.end()) {
    EXPECT_NE(error_of("cuda").find("built without the CUDA backend"), std::string::npos) << error_of("cuda");
  }
  EXPECT_THROW(register_backend("Bad Name", [](int) -> Backend& { return cpu_backend(); }), Error);
}

}  // namespace
}  // namespace kakusan
