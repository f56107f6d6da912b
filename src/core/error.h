// Errors: kakusan::Error is thrown at boundaries (files, configs, user input) with a message that says
// what is wrong and where. KK_ASSERT is for programmer errors only and aborts.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>

namespace kakusan {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <typename... Parts>
std::string str_cat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  throw Error(str_cat(parts...));
}

[[noreturn]] inline void assert_failed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "kakusan: internal error: %s (%s:%d)\n", expr, file, line);
  std::abort();
}

}  // namespace kakusan

// Throws kakusan::Error built from the remaining arguments when cond is false.
#define KK_CHECK(cond, ...)                                      \
  do {                                                           \
    if (!(cond)) ::kakusan::fail(__VA_ARGS__);                   \
  } while (0)

#define KK_ASSERT(cond)                                                        \
  do {                                                                         \
    if (!(cond)) ::kakusan::assert_failed(#cond, __FILE__, __LINE__);          \
  } while (0)
