// Fuzzes the safetensors reader: SafetensorsFile::parse on an in-memory image, then every accessor on
// whatever it accepted. A malformed file must end in kakusan::Error; anything else (a crash, a sanitizer
// report, another exception type, an accepted file that breaks the reader's own promises) is a finding.
//
// Each input is tried twice: as a raw file, and - when it holds a NUL byte - as "header JSON, NUL, data"
// with a correct 8-byte header length put in front. Random mutations rarely keep the length prefix in step
// with the JSON, so the second form lets the fuzzer explore the header validation itself.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "io/safetensors.h"

namespace {

using kakusan::SafetensorsFile;

// A broken promise of an accepted file: abort so libFuzzer records the input.
void require(bool ok) {
  if (!ok) std::abort();
}

void exercise(std::string bytes) {
  const size_t file_size = bytes.size();
  SafetensorsFile file = [&] {
    try {
      return SafetensorsFile::parse(kakusan::MappedFile::from_bytes(std::move(bytes), "fuzz.safetensors"));
    } catch (const kakusan::Error&) {
      return SafetensorsFile();  // rejected cleanly: fine
    }
  }();
  if (!file.mapping()) return;

  // Accepted: entries tile the data section exactly, each with the size its shape and dtype need.
  const size_t data_size = file.entries().empty() ? 0 : file.entries().back().end;
  require(data_size <= file_size);
  size_t cursor = 0;
  for (const SafetensorsFile::Entry& e : file.entries()) {
    require(e.begin == cursor && e.begin <= e.end);
    require(uint64_t(e.shape.numel()) * kakusan::dtype_size(e.dtype) == e.end - e.begin);
    cursor = e.end;
    require(file.find(e.name) == &e);

    const kakusan::TensorView view = file.view(e.name);
    require(view.nbytes() == e.end - e.begin);
    if (kakusan::is_float(e.dtype)) {
      const kakusan::Tensor copy = file.load_f32(e.name);
      require(copy.numel() == view.numel());
    } else {
      try {
        (void)file.load_f32(e.name);
        require(false);  // an integer tensor must be refused
      } catch (const kakusan::Error&) {
      }
    }
    const kakusan::Tensor borrowed = file.borrow(e.name);
    require(borrowed.nbytes() == view.nbytes());
  }
  try {
    (void)file.view("\x01 no such tensor");
    require(false);
  } catch (const kakusan::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string raw(reinterpret_cast<const char*>(data), size);
  exercise(raw);

  const size_t nul = raw.find('\0');
  if (nul != std::string::npos) {
    std::string framed(8, '\0');
    for (int i = 0; i < 8; ++i) framed[i] = char(uint64_t(nul) >> (8 * i));
    framed.append(raw, 0, nul);
    framed.append(raw, nul + 1);
    exercise(std::move(framed));
  }
  return 0;
}
