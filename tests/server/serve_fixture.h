// `kakusan serve` as a child process on a free loopback port, for the end-to-end tests: started with the tiny
// model, waited for until /health says ready, killed if a test leaves it running.
#pragma once

#include <httplib.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/png.h"
#include "io/scratch_dir.h"
#include "support/child_process.h"

namespace kakusan::testing {

class ServeProcess {
 public:
  // Starts `kakusan serve --model <model> --port 0 <extra...>` and waits until it is ready (ASSERTs inside:
  // check ready() after construction).
  ServeProcess(const std::string& model, const std::vector<std::string>& extra);
  ~ServeProcess();

  bool ready() const { return port_ > 0; }
  int port() const { return port_; }
  ChildProcess& child() { return child_; }
  std::unique_ptr<httplib::Client> client() const;
  const ScratchDir& dir() const { return dir_; }

 private:
  ScratchDir dir_;
  ChildProcess child_;
  int port_ = -1;
};

// A loopback port that was free a moment ago (for programs that do not report the port they chose: nginx,
// chromedriver).
int free_port();

// The JSON body of a response (a failed parse gives a JSON null, which the tests' expectations report).
nlohmann::json body_of(const httplib::Result& result);

// A base64 PNG from a response, decoded (pixels and text chunks); a test failure if it is not base64.
PngContents png_of_base64(const std::string& base64);

}  // namespace kakusan::testing
