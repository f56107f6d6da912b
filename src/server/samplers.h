// The sampler names A1111's API speaks, and the kakusan scheduler each one is (schedulers/registry.cpp holds
// the same spellings as aliases; this table is the list the server offers and accepts).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace kakusan::server {

struct Sampler {
  std::string name;                  // A1111's name ("DPM++ 2M Karras")
  std::vector<std::string> aliases;  // A1111's k-diffusion aliases ("k_dpmpp_2m_ka")
};

// Every sampler the server accepts, in A1111's order.
const std::vector<Sampler>& a1111_samplers();

// The scheduler spec for `set_scheduler` of an A1111 sampler name or alias (exact spelling, as A1111 matches
// them); nullopt if unknown.
std::optional<std::string> scheduler_for_sampler(const std::string& name);

}  // namespace kakusan::server
