// Fuzzes the server's request parsing, the one place untrusted bytes reach `kakusan serve` before a model
// sees them: parse_txt2img and parse_openai_generation, then job_params (the limits and generate_params'
// checks). A bad body must end in server::BadRequest; a crash, a sanitizer report (an out-of-range double
// cast to int, an overflow in width * height or seed + i), a huge allocation or any other exception type is
// a finding.
#include <cstdint>
#include <string_view>

#include "pipeline/prompt_attention.h"
#include "server/image_request.h"

namespace {

using namespace kakusan::server;

template <typename Parse>
void attempt(Parse&& parse, std::string_view body) {
  const RequestLimits limits;
  try {
    ImageJob job = parse(body, limits);
    job_params(job, /*random_seed=*/UINT64_MAX, 512, 512, limits);
  } catch (const BadRequest&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  attempt(parse_txt2img, body);
  attempt(parse_openai_generation, body);
  try {
    kakusan::parse_prompt_attention(body);  // prompts reach it verbatim
  } catch (const kakusan::Error&) {
  }
  return 0;
}
