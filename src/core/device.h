// Where a tensor's memory lives: host memory (which host code may read and write), or the memory of a
// backend's device (which only that backend's ops, upload and download may touch).
#pragma once

#include <cstdint>
#include <string>

namespace kakusan {

struct Device {
  enum class Kind : uint8_t { Host, Backend };
  Kind kind = Kind::Host;
  uint8_t index = 0;  // which device of that kind (a second GPU, a test heap)

  static constexpr Device host() { return {}; }
  static constexpr Device backend(int index) { return {Kind::Backend, uint8_t(index)}; }

  constexpr bool is_host() const { return kind == Kind::Host; }
  constexpr bool operator==(const Device&) const = default;
  // "host" or "device:1", for messages.
  std::string str() const { return is_host() ? "host" : "device:" + std::to_string(index); }
};

}  // namespace kakusan
