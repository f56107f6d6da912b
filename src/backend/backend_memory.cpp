// The host side of Backend's memory interface (upload and download are copies), the default capture seam
// and the planner's ScratchTally.
#include "backend/backend.h"

#include <algorithm>

namespace kakusan {

namespace {

void check_transfer(const char* what, const Backend& be, const TensorView& from, Device from_device,
                    const TensorView& to, Device to_device) {
  KK_CHECK(!from.empty() && !to.empty(), be.name(), " ", what, ": empty view");
  KK_CHECK(from.device == from_device, be.name(), " ", what, ": source is on ", from.device.str(), ", expected ",
           from_device.str());
  KK_CHECK(to.device == to_device, be.name(), " ", what, ": destination is on ", to.device.str(), ", expected ",
           to_device.str());
  KK_CHECK(to.is_contiguous(), be.name(), " ", what, ": destination must be contiguous");
  KK_CHECK(from.shape == to.shape, be.name(), " ", what, ": shapes differ: ", from.shape, " vs ", to.shape);
  KK_CHECK(from.dtype == to.dtype || (is_float(from.dtype) && is_float(to.dtype)), be.name(), " ", what,
           ": cannot convert ", dtype_name(from.dtype), " to ", dtype_name(to.dtype));
}

}  // namespace

void Backend::upload(const TensorView& host, const TensorView& dst) {
  check_upload(*this, host, dst);
  convert_into(host, dst);
}

void Backend::download(const TensorView& src, const TensorView& host) {
  check_download(*this, src, host);
  convert_into(src, host);
}

std::unique_ptr<OpGraph> Backend::end_capture() {
  fail(name(), ": end_capture without a capture begun on this thread (this backend does not capture)");
}

void check_upload(const Backend& be, const TensorView& host, const TensorView& dst) {
  check_transfer("upload", be, host, Device::host(), dst, be.device());
}

void check_download(const Backend& be, const TensorView& src, const TensorView& host) {
  check_transfer("download", be, src, be.device(), host, Device::host());
}

void ScratchTally::need(int buffer, int64_t bytes) {
  KK_ASSERT(buffer >= 0 && buffer < kBuffers);
  largest_[buffer] = std::max(largest_[buffer], bytes);
}

int64_t ScratchTally::total() const {
  int64_t sum = 0;
  for (int64_t bytes : largest_) sum += bytes;
  return sum;
}

}  // namespace kakusan
