// The service behind the HTTP routes, free of HTTP: the model (loaded once, in the background, so that
// /health can say "loading"), the job queue that runs one generation at a time on it, and the replies of
// every endpoint as (status, JSON) pairs. http_server.cpp binds these to cpp-httplib.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "kakusan/pipeline.h"
#include "server/image_request.h"
#include "server/job_queue.h"
#include "server/metrics.h"

namespace kakusan::server {

struct ServiceOptions {
  std::string model;
  LoadOptions load;
  RequestLimits limits;
  size_t queue_size = 8;
  int retry_after_seconds = 5;
};

struct Reply {
  int status = 200;
  std::string body;  // JSON
  std::map<std::string, std::string> headers;
};

// A JSON error body {"error": {"message", "code"}, "detail"} (OpenAI's shape, with A1111's `detail`).
Reply error_reply(int status, const std::string& message);

enum class Api { A1111, A1111Img2Img, OpenAI };

class ImageService {
 public:
  explicit ImageService(ServiceOptions options);
  ~ImageService();

  // Starts loading the model on a background thread; `on_failed` runs there if it cannot be loaded.
  void start_loading(std::function<void(const std::string& error)> on_failed);
  bool ready() const { return ready_; }

  // POST /sdapi/v1/txt2img and /v1/images/generations. `abandoned` says whether the client went away.
  Reply generate(Api api, const std::string& body, const std::function<bool()>& abandoned);

  Reply progress() const;
  Reply interrupt();
  Reply samplers() const;
  Reply sd_models() const;
  Reply options() const;
  Reply health() const;
  std::string metrics_text() const;
  Metrics& metrics() { return metrics_; }

  // SIGTERM: refuse new jobs, finish the accepted ones.
  void drain();
  bool draining() const { return draining_; }

 private:
  void run(Job& job);
  Reply unavailable(const std::string& why) const;
  Reply a1111_reply(const Job& job, const std::vector<std::string>& pngs) const;
  Reply openai_reply(const Job& job, const std::vector<std::string>& pngs) const;

  ServiceOptions options_;
  std::string model_name_;
  std::string default_scheduler_;
  std::optional<StableDiffusionPipeline> pipe_;
  std::atomic<bool> ready_{false}, draining_{false};
  std::thread loader_;
  Metrics metrics_;
  JobQueue queue_;
};

}  // namespace kakusan::server
