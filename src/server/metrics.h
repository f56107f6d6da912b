// The server's counters, served as Prometheus text at GET /metrics.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace kakusan::server {

class Metrics {
 public:
  // One answered HTTP request on `route` ("/sdapi/v1/txt2img") with `status`.
  void count_request(const std::string& route, int status);
  // One finished generation: `images` images in `seconds`, `steps` denoising steps in `denoise_seconds`.
  void count_generation(int images, double seconds, int steps, double denoise_seconds);

  // Prometheus text exposition format; queue_length and running are sampled by the caller.
  std::string render(int64_t queue_length, bool running, bool ready) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  int64_t images_ = 0;
  double image_seconds_ = 0;
  int64_t steps_ = 0;
  double step_seconds_ = 0;
  double last_steps_per_second_ = 0;
};

}  // namespace kakusan::server
