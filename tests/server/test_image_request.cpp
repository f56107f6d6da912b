// The request parsers: what a client may send, and the one-line 400 for everything it may not.
#include <gtest/gtest.h>

#include <string>

#include "server/image_request.h"
#include "server/samplers.h"

namespace kakusan::server {
namespace {

RequestLimits limits() { return RequestLimits{}; }

std::string parse_error(const std::string& body, bool openai = false) {
  try {
    if (openai)
      parse_openai_generation(body, limits());
    else
      parse_txt2img(body, limits());
  } catch (const BadRequest& e) {
    return e.what();
  }
  return "";
}

TEST(Txt2ImgRequest, ReadsA1111Fields) {
  ImageJob job = parse_txt2img(
      R"({"prompt":"a cat","negative_prompt":"blur","steps":12,"cfg_scale":5.5,"width":64,"height":128,
          "seed":42,"batch_size":2,"n_iter":2,"sampler_name":"Euler a"})",
      limits());
  EXPECT_EQ(job.request.prompts, std::vector<std::string>{"a cat"});
  EXPECT_EQ(job.request.negative_prompts, std::vector<std::string>{"blur"});
  EXPECT_EQ(job.request.num_inference_steps, 12);
  EXPECT_DOUBLE_EQ(job.request.guidance_scale, 5.5);
  EXPECT_EQ(job.request.width, 64);
  EXPECT_EQ(job.request.height, 128);
  EXPECT_FALSE(job.random_seed);
  EXPECT_EQ(job.seed, 42u);
  EXPECT_EQ(job.num_images, 4);
  EXPECT_EQ(job.sampler, "Euler a");
  EXPECT_EQ(job.request.prompt_syntax, PromptSyntax::A1111);
  EXPECT_EQ(parse_openai_generation(R"({"prompt":"x"})", limits()).request.prompt_syntax, PromptSyntax::Diffusers);
  EXPECT_TRUE(job.notes.empty());
}

TEST(Txt2ImgRequest, SeedsFollowA1111Numbering) {
  ImageJob one = parse_txt2img(R"({"prompt":"x","seed":7})", limits());
  GenerateParams p = job_params(one, 99, 64, 64, limits());
  EXPECT_EQ(p.seeds, std::vector<uint64_t>{7});  // one generator, as `kakusan generate --seed 7`
  ImageJob batch = parse_txt2img(R"({"prompt":"x","seed":7,"batch_size":3})", limits());
  p = job_params(batch, 99, 64, 64, limits());
  EXPECT_EQ(p.seeds, (std::vector<uint64_t>{7, 8, 9}));
  ImageJob random = parse_txt2img(R"({"prompt":"x","seed":-1})", limits());
  p = job_params(random, 99, 64, 64, limits());
  EXPECT_EQ(p.seeds, std::vector<uint64_t>{99});
}

TEST(Txt2ImgRequest, IgnoredFieldsAreNoted) {
  ImageJob job = parse_txt2img(R"({"prompt":"x","override_settings":{"sd_model_checkpoint":"y"},"enable_hr":true})",
                               limits());
  ASSERT_EQ(job.notes.size(), 2u);
  EXPECT_NE(job.notes[0].find("override_settings"), std::string::npos);
  EXPECT_NE(job.notes[1].find("enable_hr"), std::string::npos);
}

TEST(Txt2ImgRequest, BadBodiesNameTheProblem) {
  EXPECT_EQ(parse_error("{bad"), "request body is not valid JSON");
  EXPECT_EQ(parse_error("[1]"), "request body must be a JSON object");
  EXPECT_EQ(parse_error(""), "request body is not valid JSON");
  EXPECT_EQ(parse_error(R"({"prompt":3})"), "\"prompt\" must be a string, not number");
  EXPECT_EQ(parse_error(R"({"steps":"20"})"), "\"steps\" must be an integer, not string");
  EXPECT_EQ(parse_error(R"({"steps":2.5})"), "\"steps\" must be an integer in 1..150");
  EXPECT_EQ(parse_error(R"({"steps":0})"), "\"steps\" is 0; it must be in 1..150");
  EXPECT_EQ(parse_error(R"({"steps":100000})"), "\"steps\" is 100000; it must be in 1..150");
  EXPECT_EQ(parse_error(R"({"steps":1e300})"), "\"steps\" must be an integer in 1..150");
  EXPECT_EQ(parse_error(R"({"width":99999999})"), "\"width\" is 99999999; it must be in 8..8192");
  EXPECT_EQ(parse_error(R"({"cfg_scale":"high"})"), "\"cfg_scale\" must be a number, not string");
  EXPECT_EQ(parse_error(R"({"seed":-5})"), "\"seed\" must be -1 (random) or an integer in 0..18446744073709551615");
  EXPECT_EQ(parse_error(R"({"sampler_name":"Nope"})"), "unknown sampler \"Nope\" (GET /sdapi/v1/samplers lists them)");
  EXPECT_EQ(parse_error(R"({"batch_size":8,"n_iter":2})"),
            "batch_size * n_iter asks for 16 images; this server allows 8 per request");
  EXPECT_EQ(parse_error(R"({"override_settings":[]})"), "\"override_settings\" must be an object, not array");
  EXPECT_EQ(parse_error(R"j({"prompt":"a (cat:1.2.3)"})j"), "prompt weight \"1.2.3\" is not a number");
  EXPECT_EQ(parse_error(std::string(100, '[') + std::string(100, ']')), "request body nests deeper than 16 levels");
  EXPECT_EQ(parse_error(R"({"prompt":")" + std::string(20000, 'a') + "\"}"),
            "\"prompt\" is 20000 bytes; the limit is 16384");
}

TEST(Txt2ImgRequest, LimitsAndGenerateChecksAreBadRequests) {
  ImageJob big = parse_txt2img(R"({"prompt":"x","width":2048,"height":2048})", limits());
  EXPECT_THROW(job_params(big, 1, 64, 64, limits()), BadRequest);
  ImageJob odd = parse_txt2img(R"({"prompt":"x","width":65,"height":64})", limits());
  EXPECT_THROW(job_params(odd, 1, 64, 64, limits()), BadRequest);  // check_inputs: multiples of 8
}

TEST(OpenAiRequest, ReadsPromptSizeAndCount) {
  ImageJob job = parse_openai_generation(R"({"prompt":"a cat","n":2,"size":"64x32","model":"dall-e-2"})", limits());
  EXPECT_EQ(job.request.prompts, std::vector<std::string>{"a cat"});
  EXPECT_EQ(job.num_images, 2);
  EXPECT_EQ(job.request.width, 64);
  EXPECT_EQ(job.request.height, 32);
  EXPECT_TRUE(job.random_seed);
}

TEST(OpenAiRequest, BadBodiesNameTheProblem) {
  EXPECT_EQ(parse_error(R"({"n":1})", true), "\"prompt\" is required");
  EXPECT_EQ(parse_error(R"({"prompt":"x","size":"big"})", true), "\"size\" \"big\" is not WIDTHxHEIGHT (e.g. 512x512)");
  EXPECT_EQ(parse_error(R"({"prompt":"x","size":"64x"})", true), "\"size\" \"64x\" is not WIDTHxHEIGHT (e.g. 512x512)");
  EXPECT_EQ(parse_error(R"({"prompt":"x","response_format":"url"})", true),
            "\"response_format\" \"url\" is not supported; use b64_json");
  EXPECT_EQ(parse_error(R"({"prompt":"x","n":100})", true), "\"n\" is 100; it must be in 1..8");
}

TEST(Samplers, NamesAndAliasesResolve) {
  EXPECT_EQ(scheduler_for_sampler("k_euler_a"), "Euler a");
  EXPECT_EQ(scheduler_for_sampler("DPM++ 2M Karras"), "DPM++ 2M Karras");
  EXPECT_FALSE(scheduler_for_sampler("euler a"));  // A1111 matches exact spellings
}

}  // namespace
}  // namespace kakusan::server
