#include "server/metrics.h"

#include <sstream>

namespace kakusan::server {

void Metrics::count_request(const std::string& route, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[{route, status}];
}

void Metrics::count_generation(int images, double seconds, int steps, double denoise_seconds) {
  std::lock_guard lock(mutex_);
  images_ += images;
  image_seconds_ += seconds;
  steps_ += steps;
  step_seconds_ += denoise_seconds;
  if (denoise_seconds > 0) last_steps_per_second_ = steps / denoise_seconds;
}

std::string Metrics::render(int64_t queue_length, bool running, bool ready) const {
  std::lock_guard lock(mutex_);
  std::ostringstream out;
  out << "# HELP kakusan_up 1 once the model is loaded and the server takes work.\n"
      << "# TYPE kakusan_up gauge\nkakusan_up " << (ready ? 1 : 0) << "\n"
      << "# HELP kakusan_queue_length Jobs waiting for the pipeline (not counting the running one).\n"
      << "# TYPE kakusan_queue_length gauge\nkakusan_queue_length " << queue_length << "\n"
      << "# HELP kakusan_running 1 while a generation runs.\n"
      << "# TYPE kakusan_running gauge\nkakusan_running " << (running ? 1 : 0) << "\n"
      << "# HELP kakusan_http_requests_total HTTP requests answered, by route and status.\n"
      << "# TYPE kakusan_http_requests_total counter\n";
  for (const auto& [key, count] : requests_)
    out << "kakusan_http_requests_total{route=\"" << key.first << "\",status=\"" << key.second << "\"} " << count
        << "\n";
  out << "# HELP kakusan_image_seconds Wall time per generated image (sum and count).\n"
      << "# TYPE kakusan_image_seconds summary\n"
      << "kakusan_image_seconds_sum " << image_seconds_ << "\nkakusan_image_seconds_count " << images_ << "\n"
      << "# HELP kakusan_denoise_steps_total Denoising steps run.\n"
      << "# TYPE kakusan_denoise_steps_total counter\nkakusan_denoise_steps_total " << steps_ << "\n"
      << "# HELP kakusan_denoise_seconds_total Wall time spent in denoising steps.\n"
      << "# TYPE kakusan_denoise_seconds_total counter\nkakusan_denoise_seconds_total " << step_seconds_ << "\n"
      << "# HELP kakusan_steps_per_second Denoising steps per second of the last generation.\n"
      << "# TYPE kakusan_steps_per_second gauge\nkakusan_steps_per_second " << last_steps_per_second_ << "\n";
  return out.str();
}

}  // namespace kakusan::server
