// `kakusan serve` end to end on loopback with the kit's tiny model: every endpoint, the txt2img image equal
// to `kakusan generate --prompt-syntax a1111`'s (A1111's endpoints read A1111's prompt syntax), bad requests answered with 4xx JSON while the server stays healthy, a full queue's
// 503, interrupt, the API key, and the SIGTERM drain.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <future>
#include <thread>

#include "serve_fixture.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::ServeProcess;

std::string tiny_model() { return (*testing::golden_dir() / "tiny-sd").string(); }

// Waits until /sdapi/v1/progress shows a job past its first step.
bool wait_for_running_job(httplib::Client& http) {
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < deadline) {
    const json p = testing::body_of(http.Get("/sdapi/v1/progress"));
    if (p.is_object() && p["state"]["sampling_step"].get<int>() >= 1) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

// A job long enough to be caught running, on any machine (it is interrupted or drained, never awaited whole
// unless the test means to).
const std::string kLongJob = R"({"prompt":"a long one","steps":150,"width":128,"height":128,"seed":1})";

void expect_json_error(const httplib::Result& r, int status, const std::string& message_part) {
  ASSERT_TRUE(r) << "no response";
  EXPECT_EQ(r->status, status) << r->body;
  const json body = json::parse(r->body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << r->body;
  EXPECT_NE(body["error"]["message"].get<std::string>().find(message_part), std::string::npos) << r->body;
}

TEST(ServeE2E, InformationEndpoints) {
  KK_REQUIRE_GOLDEN();
  ServeProcess server(tiny_model(), {});
  ASSERT_TRUE(server.ready());
  auto http = server.client();
  EXPECT_EQ(testing::body_of(http->Get("/health"))["status"], "ok");
  const json samplers = testing::body_of(http->Get("/sdapi/v1/samplers"));
  ASSERT_TRUE(samplers.is_array());
  bool euler_a = false;
  for (const json& s : samplers) euler_a = euler_a || s["name"] == "Euler a";
  EXPECT_TRUE(euler_a);
  const json models = testing::body_of(http->Get("/sdapi/v1/sd-models"));
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0]["model_name"], "tiny-sd");
  EXPECT_EQ(models[0]["filename"], "tiny-sd");  // no path on disk leaks out
  EXPECT_EQ(testing::body_of(http->Get("/sdapi/v1/options"))["sd_model_checkpoint"], "tiny-sd");
  expect_json_error(http->Post("/sdapi/v1/options", "{}", "application/json"), 405, "read-only");
  const json progress = testing::body_of(http->Get("/sdapi/v1/progress"));
  EXPECT_EQ(progress["progress"], 0.0);
  EXPECT_EQ(progress["state"]["job_count"], 0);
  auto page = http->Get("/");
  ASSERT_TRUE(page);
  EXPECT_NE(page->body.find("<form id=\"form\">"), std::string::npos);
  expect_json_error(http->Get("/no/such/thing"), 404, "no such endpoint");
  auto metrics = http->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("kakusan_queue_length 0\n"), std::string::npos) << metrics->body;
  EXPECT_NE(metrics->body.find("kakusan_http_requests_total{route=\"/sdapi/v1/samplers\",status=\"200\"} 1"),
            std::string::npos)
      << metrics->body;
}

TEST(ServeE2E, Txt2ImgEqualsKakusanGenerate) {
  KK_REQUIRE_GOLDEN();
  ServeProcess server(tiny_model(), {});
  ASSERT_TRUE(server.ready());
  auto http = server.client();
  auto r = http->Post("/sdapi/v1/txt2img",
                      R"({"prompt":"a (red:1.3) cube, [shiny]","negative_prompt":"blurry","steps":5,"cfg_scale":6.5,
                          "width":64,"height":64,"seed":1234,"sampler_name":"Euler a"})",
                      "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json body = json::parse(r->body);
  ASSERT_EQ(body["images"].size(), 1u);
  const PngContents served = testing::png_of_base64(body["images"][0]);
  const json info = json::parse(body["info"].get<std::string>());
  EXPECT_EQ(info["seed"], 1234);

  const auto out = server.dir() / "cli.png";
  std::filesystem::create_directories(server.dir() / "cli");
  testing::ChildProcess cli(KAKUSAN_CLI_PATH,
                            {"generate", "--model", tiny_model(), "--prompt", "a (red:1.3) cube, [shiny]", "--prompt-syntax", "a1111",
                             "--negative-prompt",
                             "blurry", "--steps", "5", "--guidance", "6.5", "--width", "64", "--height", "64",
                             "--seed", "1234", "--scheduler", "Euler a", "--threads", "2", "--quiet", "--output",
                             out.string()},
                            server.dir() / "cli");
  ASSERT_EQ(cli.wait(120s, 10ms).status, 0) << cli.stderr_text();
  const PngContents generated = read_png(out);
  EXPECT_EQ(served.image.width, 64);
  EXPECT_TRUE(served.image.rgb == generated.image.rgb) << "the served image differs from kakusan generate's";
  EXPECT_EQ(served.text, generated.text);  // the same `parameters` text
  EXPECT_EQ(info["infotexts"][0], generated.text.at(0).second);
}

TEST(ServeE2E, OpenAiGenerations) {
  KK_REQUIRE_GOLDEN();
  ServeProcess server(tiny_model(), {});
  ASSERT_TRUE(server.ready());
  auto http = server.client();
  auto r = http->Post("/v1/images/generations",
                      R"({"prompt":"a blue sphere","n":2,"size":"64x32","response_format":"b64_json","seed":5})",
                      "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json body = json::parse(r->body);
  ASSERT_EQ(body["data"].size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const PngContents png = testing::png_of_base64(body["data"][i]["b64_json"]);
    EXPECT_EQ(png.image.width, 64);
    EXPECT_EQ(png.image.height, 32);
    ASSERT_EQ(png.text.size(), 1u);
    EXPECT_NE(png.text[0].second.find("Seed: " + std::to_string(5 + i)), std::string::npos) << png.text[0].second;
  }
}

TEST(ServeE2E, BadRequestsGetJsonErrorsAndTheServerStaysHealthy) {
  KK_REQUIRE_GOLDEN();
  ServeProcess server(tiny_model(), {"--max-body", "4096", "--max-pixels", "16384"});
  ASSERT_TRUE(server.ready());
  auto http = server.client();
  const std::string t2i = "/sdapi/v1/txt2img";
  expect_json_error(http->Post(t2i, "{\"prompt\": ", "application/json"), 400, "not valid JSON");
  expect_json_error(http->Post(t2i, R"({"prompt":"x","steps":"many"})", "application/json"), 400,
                    "\"steps\" must be an integer");
  expect_json_error(http->Post(t2i, R"({"prompt":"x","width":4096,"height":4096})", "application/json"), 400,
                    "this server allows 16384");
  expect_json_error(http->Post(t2i, R"({"prompt":"x","width":1000000})", "application/json"), 400, "\"width\"");
  expect_json_error(http->Post(t2i, R"({"prompt":"x","sampler_name":"Warp 9"})", "application/json"), 400,
                    "unknown sampler");
  expect_json_error(http->Post(t2i, R"({"prompt":")" + std::string(10000, 'a') + "\"}", "application/json"), 413,
                    "too large");
  expect_json_error(http->Post("/v1/images/generations", R"({"prompt":"x","response_format":"url"})",
                               "application/json"),
                    400, "b64_json");
  expect_json_error(http->Get(t2i), 404, "no such endpoint");  // cpp-httplib routes by method too
  EXPECT_EQ(testing::body_of(http->Get("/health"))["status"], "ok");
  auto ok = http->Post(t2i, R"({"prompt":"still fine","steps":2,"width":64,"height":64,"seed":1})", "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST(ServeE2E, ApiKeyGuardsEverythingButHealthAndThePage) {
  KK_REQUIRE_GOLDEN();
  ServeProcess server(tiny_model(), {"--api-key", "s3cret"});
  ASSERT_TRUE(server.ready());
  auto http = server.client();
  expect_json_error(http->Get("/sdapi/v1/samplers"), 401, "API key");
  expect_json_error(http->Get("/sdapi/v1/samplers", {{"Authorization", "Bearer wrong"}}), 401, "API key");
  auto r = http->Get("/sdapi/v1/samplers", {{"Authorization", "Bearer s3cret"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(http->Get("/health")->status, 200);
  EXPECT_EQ(http->Get("/")->status, 200);
}

TEST(ServeE2E, InterruptStopsTheRunningJob) {
  KK_REQUIRE_GOLDEN();
  ServeProcess server(tiny_model(), {});
  ASSERT_TRUE(server.ready());
  auto long_job = std::async(std::launch::async, [&] {
    return server.client()->Post("/sdapi/v1/txt2img", kLongJob, "application/json");
  });
  auto http = server.client();
  ASSERT_TRUE(wait_for_running_job(*http));
  EXPECT_EQ(testing::body_of(http->Post("/sdapi/v1/interrupt", "", "application/json"))["interrupted"], true);
  ASSERT_EQ(long_job.wait_for(60s), std::future_status::ready) << "the interrupted job did not end";
  expect_json_error(long_job.get(), 409, "interrupted");
  EXPECT_EQ(testing::body_of(http->Get("/health"))["status"], "ok");
}

TEST(ServeE2E, AClientThatGoesAwayCancelsItsJob) {
  KK_REQUIRE_GOLDEN();
  ServeProcess server(tiny_model(), {});
  ASSERT_TRUE(server.ready());
  auto http = server.client();
  auto impatient = std::async(std::launch::async, [&] {
    auto client = server.client();
    client->set_read_timeout(1s);  // gives up (closes the connection) long before 150 steps
    return client->Post("/sdapi/v1/txt2img", kLongJob, "application/json");
  });
  ASSERT_TRUE(wait_for_running_job(*http));
  EXPECT_FALSE(impatient.get());  // the client timed out
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  json progress;
  do {
    progress = testing::body_of(http->Get("/sdapi/v1/progress"));
    if (progress["state"]["job_count"] == 0) break;
    std::this_thread::sleep_for(20ms);
  } while (std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(progress["state"]["job_count"], 0) << "the abandoned job still runs: " << progress.dump();
  EXPECT_LT(progress["state"]["sampling_step"].get<int>(), 150);
  auto metrics = http->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("kakusan_http_requests_total{route=\"/sdapi/v1/txt2img\",status=\"409\"} 1"),
            std::string::npos)
      << metrics->body;
}

TEST(ServeE2E, FullQueueAnswers503WithRetryAfter) {
  KK_REQUIRE_GOLDEN();
  ServeProcess server(tiny_model(), {"--queue-size", "1", "--retry-after", "7"});
  ASSERT_TRUE(server.ready());
  auto running = std::async(std::launch::async, [&] {
    return server.client()->Post("/sdapi/v1/txt2img", kLongJob, "application/json");
  });
  auto http = server.client();
  ASSERT_TRUE(wait_for_running_job(*http));
  const std::string small = R"({"prompt":"queued","steps":1,"width":64,"height":64,"seed":3})";
  auto queued = std::async(std::launch::async, [&] {
    return server.client()->Post("/sdapi/v1/txt2img", small, "application/json");
  });
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (testing::body_of(http->Get("/sdapi/v1/progress"))["state"]["job_count"] != 2 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  auto refused = http->Post("/sdapi/v1/txt2img", small, "application/json");
  expect_json_error(refused, 503, "queue is full");
  EXPECT_EQ(refused->get_header_value("Retry-After"), "7");
  http->Post("/sdapi/v1/interrupt", "", "application/json");
  EXPECT_EQ(running.get()->status, 409);
  auto served = queued.get();
  ASSERT_TRUE(served);
  EXPECT_EQ(served->status, 200);  // the queued job was not lost
}

TEST(ServeE2E, SigtermDrainsAcceptedJobsAndExitsZero) {
  KK_REQUIRE_GOLDEN();
  ServeProcess server(tiny_model(), {});
  ASSERT_TRUE(server.ready());
  const std::string job = R"({"prompt":"drain me","steps":40,"width":128,"height":128,"seed":9})";
  auto first = std::async(std::launch::async, [&] {
    return server.client()->Post("/sdapi/v1/txt2img", job, "application/json");
  });
  auto http = server.client();
  ASSERT_TRUE(wait_for_running_job(*http));
  auto second = std::async(std::launch::async, [&] {
    return server.client()->Post("/sdapi/v1/txt2img", job, "application/json");
  });
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (testing::body_of(http->Get("/sdapi/v1/progress"))["state"]["job_count"] != 2 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  ASSERT_EQ(kill(server.child().pid(), SIGTERM), 0);
  std::this_thread::sleep_for(100ms);
  auto late = http->Post("/sdapi/v1/txt2img", job, "application/json");
  if (late) expect_json_error(late, 503, "shutting down");  // or the port is already closed: also refused
  EXPECT_EQ(testing::body_of(http->Get("/health"))["status"], "draining");
  for (auto* accepted : {&first, &second}) {
    auto r = accepted->get();
    ASSERT_TRUE(r) << "an accepted job lost its answer";
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(json::parse(r->body)["images"].size(), 1u);
  }
  const testing::ChildEnd end = server.child().wait(60s, 10ms);
  ASSERT_TRUE(end.status.has_value()) << "the server did not exit after draining";
  EXPECT_TRUE(WIFEXITED(*end.status) && WEXITSTATUS(*end.status) == 0)
      << testing::describe_wait_status(end.status) << "\n" << server.child().stderr_text();
}

TEST(ServeE2E, EverySamplerItListsRuns) {
  KK_REQUIRE_GOLDEN();
  ServeProcess server(tiny_model(), {});
  ASSERT_TRUE(server.ready());
  auto http = server.client();
  for (const json& sampler : testing::body_of(http->Get("/sdapi/v1/samplers"))) {
    const json request = {{"prompt", "x"}, {"steps", 2}, {"width", 64}, {"height", 64}, {"seed", 1},
                          {"sampler_name", sampler["name"]}};
    auto r = http->Post("/sdapi/v1/txt2img", request.dump(), "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << sampler["name"] << ": " << r->body;
  }
}

TEST(ServeE2E, AModelThatCannotBeLoadedEndsTheServer) {
  testing::ScratchDir dir;
  testing::ChildProcess serve(KAKUSAN_CLI_PATH, {"serve", "--model", (dir / "no-such-model").string(), "--port", "0"},
                              dir.path());
  const testing::ChildEnd end = serve.wait(60s, 10ms);
  ASSERT_TRUE(end.status.has_value()) << "the server kept running without a model";
  EXPECT_TRUE(WIFEXITED(*end.status) && WEXITSTATUS(*end.status) == 2) << testing::describe_wait_status(end.status);
  EXPECT_NE(serve.stderr_text().find("cannot load the model"), std::string::npos) << serve.stderr_text();
}

}  // namespace
}  // namespace kakusan
