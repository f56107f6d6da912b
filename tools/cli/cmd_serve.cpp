// kakusan serve: the model loaded once behind an HTTP API (A1111's /sdapi/v1, OpenAI's /v1/images/generations,
// /health, /metrics and a page at /). See src/server/http_server.h.
//
//   kakusan serve --model DIR [--host 127.0.0.1] [--port 7860] [--device cpu|cuda[:N]] [--dtype fp32|fp16|bf16]
//     [--offload none|model|sequential] [--threads N] [--lora FILE[:SCALE] ...] [--lora-dir DIR]
//     [--scheduler NAME] [--queue-size N] [--max-pixels N] [--max-steps N] [--max-batch N] [--max-body BYTES]
//     [--api-key KEY | env KAKUSAN_API_KEY] [--retry-after SECONDS]
//
// Listens on loopback unless --host says otherwise. SIGTERM (or Ctrl-C) drains: the accepted jobs finish, new
// ones get 503, then the process exits 0.
#include <cstdlib>
#include <map>
#include <memory>

#include "bf16_notice.h"
#include "command.h"
#include "offload_option.h"
#include "core/error.h"
#include "pipeline/file_arguments.h"
#include "server/http_server.h"

namespace kakusan::cli {
namespace {

struct ServeFlags {
  server::ServeOptions serve;
  std::string dtype = "fp32";
  std::string offload = "none";
  int threads = 0;
  int64_t max_body = 1 << 20;
  std::vector<std::string> loras;  // FILE[:SCALE]
};

int run_serve(ServeFlags& f) {
  static const std::map<std::string, WeightDType> dtypes = {
      {"fp32", WeightDType::F32}, {"fp16", WeightDType::F16}, {"bf16", WeightDType::BF16}};
  server::ServeOptions& o = f.serve;
  o.service.load.dtype = dtypes.at(f.dtype);
  notice_bf16_speed(f.dtype == "bf16", o.service.load.device);
  o.service.load.num_threads = f.threads;
  o.service.load.offload = offload_from_name(f.offload);
  for (const std::string& lora : f.loras) o.service.load.loras.push_back(parse_lora_argument(lora));
  o.max_body_bytes = size_t(f.max_body);
  if (o.api_key.empty())
    if (const char* key = std::getenv("KAKUSAN_API_KEY")) o.api_key = key;
  return server::serve(o);
}

const bool registered = register_command({
    "serve",
    "Serve a model over HTTP (A1111 and OpenAI image APIs, /health, /metrics, a web page)",
    [](CLI::App& app) -> std::function<int()> {
      auto f = std::make_shared<ServeFlags>();
      server::ServeOptions& o = f->serve;
      server::RequestLimits& limits = o.service.limits;
      app.add_option("--model", o.service.model, "diffusers model folder or Hugging Face model id (offline cache)")
          ->required();
      app.add_option("--host", o.host, "address to listen on (loopback unless you say otherwise)")
          ->capture_default_str();
      app.add_option("--port", o.port, "TCP port (0: any free port)")->capture_default_str()->check(CLI::Range(0, 65535));
      app.add_option("--device", o.service.load.device, "where the model runs: cpu (default), reference, cuda[:N] if built in")
          ->capture_default_str();
      app.add_option("--dtype", f->dtype, "weights in memory")
          ->capture_default_str()
          ->check(CLI::IsMember({"fp32", "fp16", "bf16"}));
      app.add_option("--offload", f->offload, kOffloadHelp)->capture_default_str();
      app.add_option("--threads", f->threads, "threads (0 = all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
      app.add_option("--scheduler", o.service.load.scheduler, "default scheduler (class name or alias)");
      app.add_option("--lora", f->loras, "LoRA FILE[:SCALE] fused into the model for every request (repeatable)")
          ->allow_extra_args(false);
      app.add_option("--lora-dir", o.service.load.lora_dir,
                     "folder of the LoRAs that requests' prompt tags <lora:NAME:WEIGHT> name")
          ->check(CLI::ExistingDirectory);
      app.add_option("--queue-size", o.service.queue_size, "jobs waiting at most; more get 503 + Retry-After")
          ->capture_default_str()
          ->check(CLI::Range(1, 1024));
      app.add_option("--max-pixels", limits.max_pixels, "largest width * height per image")
          ->capture_default_str()
          ->check(CLI::Range(int64_t(64), int64_t(kMaxImageSide) * kMaxImageSide));
      app.add_option("--max-steps", limits.max_steps, "most denoising steps per request")
          ->capture_default_str()
          ->check(CLI::Range(1, 10000));
      app.add_option("--max-batch", limits.max_batch, "most images per request")
          ->capture_default_str()
          ->check(CLI::Range(1, kMaxImagesPerCall));
      app.add_option("--max-body", f->max_body, "largest request body in bytes")
          ->capture_default_str()
          ->check(CLI::Range(int64_t(1024), int64_t(64) << 20));
      app.add_option("--api-key", o.api_key,
                     "require Authorization: Bearer KEY (also read from KAKUSAN_API_KEY, which ps does not show)");
      app.add_option("--retry-after", o.service.retry_after_seconds, "Retry-After seconds sent with 503")
          ->capture_default_str()
          ->check(CLI::Range(1, 3600));
      return [f] { return run_serve(*f); };
    },
});

}  // namespace
}  // namespace kakusan::cli
