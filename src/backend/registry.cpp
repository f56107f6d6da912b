#include "backend/registry.h"

#include <charconv>
#include <map>
#include <mutex>

#include "core/error.h"
#ifdef KAKUSAN_HAVE_CUDA
#include "backend/cuda/cuda_registration.h"
#endif

namespace kakusan {

namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, BackendFactory> factories;

  Registry() {
    factories["cpu"] = [](int index) -> Backend& {
      KK_CHECK(index == 0, "device cpu:", index, ": there is one CPU device (cpu or cpu:0)");
      return cpu_backend();
    };
    factories["reference"] = [](int index) -> Backend& {
      KK_CHECK(index == 0, "device reference:", index, ": there is one reference device");
      return reference_backend();
    };
#ifdef KAKUSAN_HAVE_CUDA
    factories["cuda"] = cuda_backend_factory();
#endif
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

std::string known_kinds() {
  std::string list;
  for (const std::string& kind : backend_kinds()) list += (list.empty() ? "" : ", ") + kind;
  return list;
}

}  // namespace

void register_backend(const std::string& kind, BackendFactory factory) {
  KK_CHECK(!kind.empty() && kind.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_") == std::string::npos,
           "backend kind \"", kind, "\" must be lowercase letters, digits, '-' or '_'");
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.factories[kind] = std::move(factory);
}

std::vector<std::string> backend_kinds() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  std::vector<std::string> kinds;
  for (const auto& [kind, factory] : r.factories) kinds.push_back(kind);
  return kinds;
}

Backend& backend_for_device(const std::string& spec) {
  const size_t colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  int index = 0;
  if (colon != std::string::npos) {
    const std::string digits = spec.substr(colon + 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    KK_CHECK(!digits.empty() && ec == std::errc() && end == digits.data() + digits.size() && index >= 0,
             "device \"", spec, "\": the index after ':' must be a number >= 0");
  }
  BackendFactory factory;
  {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    const auto it = r.factories.find(kind);
    if (it != r.factories.end()) factory = it->second;
  }
  if (!factory) {
    KK_CHECK(kind != "cuda", "device \"", spec, "\": this kakusan was built without the CUDA backend (devices: ",
             known_kinds(), ")");
    fail("device \"", spec, "\" is unknown (devices: ", known_kinds(), ")");
  }
  return factory(index);
}

}  // namespace kakusan
