#include "serve_fixture.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <thread>

#include "server/base64.h"

namespace kakusan::testing {

using namespace std::chrono_literals;

ServeProcess::ServeProcess(const std::string& model, const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"serve", "--model", model, "--host", "127.0.0.1", "--port", "0", "--threads", "2"};
  args.insert(args.end(), extra.begin(), extra.end());
  child_ = ChildProcess(KAKUSAN_CLI_PATH, args, dir_.path());
  const std::string marker = "listening on http://127.0.0.1:";
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  int port = -1;
  while (std::chrono::steady_clock::now() < deadline && child_.pid() > 0) {
    const std::string err = child_.stderr_text();
    const size_t at = err.find(marker);
    if (at != std::string::npos && err.find(' ', at + marker.size()) != std::string::npos) {
      port = std::stoi(err.substr(at + marker.size()));
      break;
    }
    if (child_.poll()) break;
    std::this_thread::sleep_for(10ms);
  }
  if (port <= 0) {
    ADD_FAILURE() << "kakusan serve did not start: " << child_.stderr_text();
    return;
  }
  httplib::Client http("127.0.0.1", port);
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto r = http.Get("/health"); r && r->status == 200) {
      port_ = port;
      return;
    }
    std::this_thread::sleep_for(20ms);
  }
  ADD_FAILURE() << "kakusan serve never became healthy: " << child_.stderr_text();
}

ServeProcess::~ServeProcess() { child_.kill_now(); }

std::unique_ptr<httplib::Client> ServeProcess::client() const {
  auto http = std::make_unique<httplib::Client>("127.0.0.1", port_);
  http->set_read_timeout(120s);
  http->set_write_timeout(30s);
  return http;
}

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  close(fd);
  return ok ? ntohs(addr.sin_port) : -1;
}

nlohmann::json body_of(const httplib::Result& result) {
  if (!result) return nullptr;
  return nlohmann::json::parse(result->body, nullptr, false);
}

PngContents png_of_base64(const std::string& base64) {
  const std::optional<std::string> bytes = server::base64_decode(base64);
  if (!bytes) {
    ADD_FAILURE() << "not valid base64: " << base64.substr(0, 80);
    return {};
  }
  return kakusan::decode_png(*bytes, "base64 PNG");
}

}  // namespace kakusan::testing
