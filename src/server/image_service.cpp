#include "server/image_service.h"

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <mutex>
#include <random>

#include "io/png.h"
#include "pipeline/output_files.h"
#include "server/base64.h"
#include "server/samplers.h"

namespace kakusan::server {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

Reply json_reply(int status, const json& body) { return {status, body.dump(), {}}; }

// A1111 seeds are 32-bit when it picks them; so are ours, so that a client can type one back in.
uint64_t random_seed() {
  static std::mutex mutex;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard lock(mutex);
  return rng() & 0xffffffffu;
}

}  // namespace

Reply error_reply(int status, const std::string& message) {
  return json_reply(status, {{"error", {{"message", message}, {"code", status}}}, {"detail", message}});
}

ImageService::ImageService(ServiceOptions options)
    : options_(std::move(options)),
      model_name_(model_display_name(options_.model)),
      queue_(options_.queue_size, [this](Job& job) { run(job); }) {}

ImageService::~ImageService() {
  queue_.close_and_drain();
  if (loader_.joinable()) loader_.join();
}

void ImageService::start_loading(std::function<void(const std::string& error)> on_failed) {
  loader_ = std::thread([this, on_failed = std::move(on_failed)] {
    try {
      pipe_.emplace(StableDiffusionPipeline::load(options_.model, options_.load));
      default_scheduler_ = pipe_->scheduler_name();
      ready_ = true;
      std::fprintf(stderr, "kakusan: model loaded (%s); ready\n", default_scheduler_.c_str());
    } catch (const std::exception& e) {
      on_failed(e.what());
    }
  });
}

// On the queue's worker thread: the only place the pipeline runs.
void ImageService::run(Job& job) {
  pipe_->set_scheduler(job.spec.sampler.empty() ? default_scheduler_ : job.spec.sampler);
  job.sampler = pipe_->scheduler_name();
  double denoise_seconds = 0;
  job.params.callback_on_step_end = [&](const StepInfo& info) {
    job.step = info.step + 1;
    job.steps = info.num_steps;
    denoise_seconds += info.seconds;
    return !job.cancel;
  };
  const auto start = Clock::now();
  job.result.emplace(pipe_->generate(job.params));
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  metrics_.count_generation(int(job.result->images.size()), seconds, job.steps, denoise_seconds);
}

Reply ImageService::unavailable(const std::string& why) const {
  Reply reply = error_reply(503, why);
  reply.headers["Retry-After"] = std::to_string(options_.retry_after_seconds);
  return reply;
}

Reply ImageService::generate(Api api, const std::string& body, const std::function<bool()>& abandoned) {
  if (draining_) return unavailable("the server is shutting down");
  if (!ready_) return unavailable("the model is still loading");
  auto job = std::make_shared<Job>();
  try {
    job->spec = api == Api::A1111        ? parse_txt2img(body, options_.limits)
                : api == Api::A1111Img2Img ? parse_img2img(body, options_.limits)
                                           : parse_openai_generation(body, options_.limits);
    job->params = job_params(job->spec, random_seed(), pipe_->default_width(), pipe_->default_height(),
                             options_.limits);
  } catch (const BadRequest& e) {
    return error_reply(400, e.what());
  }
  switch (queue_.submit(job)) {
    case JobQueue::Submitted::Full:
      return unavailable("the queue is full (" + std::to_string(options_.queue_size) + " jobs); retry later");
    case JobQueue::Submitted::Closed:
      return unavailable("the server is shutting down");
    case JobQueue::Submitted::Accepted:
      break;
  }
  queue_.wait(*job, abandoned);
  if (job->cancelled) return error_reply(409, "the generation was interrupted");
  if (!job->error.empty()) {
    // The memory planner's refusal is the request's size, not a server fault.
    return error_reply(job->error.rfind("not enough memory", 0) == 0 ? 413 : 500, job->error);
  }
  std::vector<std::string> pngs;
  const GenerateResult& result = *job->result;
  for (size_t i = 0; i < result.images.size(); ++i)
    pngs.push_back(base64_encode(
        encode_png(result.images[i], image_parameters(job->params, result, i, job->sampler, model_name_,
                                                       options_.load.dtype))));
  return api == Api::OpenAI ? openai_reply(*job, pngs) : a1111_reply(*job, pngs);
}

Reply ImageService::a1111_reply(const Job& job, const std::vector<std::string>& pngs) const {
  const GenerateResult& result = *job.result;
  const GenerateParams& p = job.params;
  json infotexts = json::array();
  for (size_t i = 0; i < result.images.size(); ++i)
    infotexts.push_back(image_parameters(p, result, i, job.sampler, model_name_, options_.load.dtype).at(0).second);
  const json info = {
      {"prompt", p.prompt.at(0)},
      {"negative_prompt", p.negative_prompt.empty() ? "" : p.negative_prompt.at(0)},
      {"seed", result.seeds.at(0)},
      {"all_seeds", result.seeds},
      {"steps", p.num_inference_steps},
      {"cfg_scale", p.guidance_scale},
      {"width", result.image_shape.at(2)},
      {"height", result.image_shape.at(1)},
      {"sampler_name", job.spec.sampler.empty() ? job.sampler : job.spec.sampler},
      {"sd_model_name", model_name_},
      {"infotexts", infotexts},
      {"notes", job.spec.notes},
  };
  const json parameters = {{"prompt", p.prompt.at(0)},
                           {"negative_prompt", p.negative_prompt.empty() ? "" : p.negative_prompt.at(0)},
                           {"steps", p.num_inference_steps},
                           {"cfg_scale", p.guidance_scale},
                           {"width", result.image_shape.at(2)},
                           {"height", result.image_shape.at(1)},
                           {"seed", result.seeds.at(0)},
                           {"denoising_strength", p.image.empty() ? json(nullptr) : json(effective_strength(p))},
                           {"batch_size", result.images.size()},
                           {"n_iter", 1}};
  return json_reply(200, {{"images", pngs}, {"parameters", parameters}, {"info", info.dump()}});
}

Reply ImageService::openai_reply(const Job& job, const std::vector<std::string>& pngs) const {
  json data = json::array();
  for (size_t i = 0; i < pngs.size(); ++i)
    data.push_back({{"b64_json", pngs[i]}, {"revised_prompt", job.params.prompt.at(0)},
                    {"seed", job.result->seeds.at(i)}});
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return json_reply(200, {{"created", std::chrono::duration_cast<std::chrono::seconds>(now).count()},
                          {"data", data},
                          {"notes", job.spec.notes}});
}

Reply ImageService::progress() const {
  const std::shared_ptr<Job> job = queue_.running();
  double progress = 0, eta = 0;
  int step = 0, steps = 0;
  if (job) {
    step = job->step;
    steps = job->steps;
    if (steps > 0) progress = double(step) / steps;
    const double elapsed = std::chrono::duration<double>(Clock::now() - job->started).count();
    if (step > 0) eta = elapsed / step * (steps - step);
  }
  const json state = {{"skipped", false},
                      {"interrupted", job ? bool(job->cancel) : false},
                      {"job", !job ? "" : job->params.image.empty() ? "txt2img" : "img2img"},
                      {"job_count", queue_.queued() + (job ? 1 : 0)},
                      {"job_no", 0},
                      {"sampling_step", step},
                      {"sampling_steps", steps}};
  return json_reply(200, {{"progress", progress},
                          {"eta_relative", eta},
                          {"state", state},
                          {"current_image", nullptr},
                          {"textinfo", nullptr}});
}

Reply ImageService::interrupt() {
  const bool had_job = queue_.interrupt();
  return json_reply(200, {{"interrupted", had_job}});
}

Reply ImageService::samplers() const {
  json list = json::array();
  for (const Sampler& s : a1111_samplers()) list.push_back({{"name", s.name}, {"aliases", s.aliases}, {"options", json::object()}});
  return json_reply(200, list);
}

Reply ImageService::sd_models() const {
  // The model is fixed at start; its path on disk is not the client's business.
  return json_reply(200, json::array({{{"title", model_name_},
                                       {"model_name", model_name_},
                                       {"hash", nullptr},
                                       {"sha256", nullptr},
                                       {"filename", model_name_},
                                       {"config", nullptr}}}));
}

Reply ImageService::options() const {
  return json_reply(200, {{"sd_model_checkpoint", model_name_},
                          {"samples_format", "png"},
                          {"CLIP_stop_at_last_layers", 1},
                          {"kakusan_scheduler", ready_ ? default_scheduler_ : ""},
                          {"kakusan_default_width", ready_ ? pipe_->default_width() : 0},
                          {"kakusan_default_height", ready_ ? pipe_->default_height() : 0},
                          {"kakusan_max_pixels", options_.limits.max_pixels},
                          {"kakusan_max_steps", options_.limits.max_steps},
                          {"kakusan_max_batch", options_.limits.max_batch},
                          {"kakusan_queue_size", options_.queue_size}});
}

Reply ImageService::health() const {
  if (draining_) return json_reply(503, {{"status", "draining"}});
  if (!ready_) return json_reply(503, {{"status", "loading"}});
  return json_reply(200, {{"status", "ok"}, {"model", model_name_}});
}

std::string ImageService::metrics_text() const {
  return metrics_.render(int64_t(queue_.queued()), queue_.running() != nullptr, ready_ && !draining_);
}

void ImageService::drain() {
  draining_ = true;
  queue_.close_and_drain();
}

}  // namespace kakusan::server
