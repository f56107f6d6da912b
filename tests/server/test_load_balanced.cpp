// The scale-out story, bounded: two `kakusan serve` replicas of the tiny model behind nginx (Debian's, started
// here with deploy/nginx/*.conf), 200 requests from 16 concurrent clients, one replica killed (SIGKILL) halfway.
// Every request must be answered within its deadline: an image, or a clean error a client may retry (502/503/
// 504). Prints throughput and p50/p99 latency.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <thread>

#include "serve_fixture.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kNginx = "/usr/sbin/nginx";
constexpr int kRequests = 200;
constexpr int kClients = 16;

std::string deploy_file(const std::string& name) {
  return testing::read_text(std::filesystem::path(KAKUSAN_SOURCE_DIR) / "deploy" / "nginx" / name);
}

// deploy/nginx's configuration with this test's ports, and a main file that keeps everything in `dir`.
std::filesystem::path write_nginx_config(const testing::ScratchDir& dir, int listen, int a, int b) {
  std::string upstream = deploy_file("upstream.conf");
  upstream = std::regex_replace(upstream, std::regex("127\\.0\\.0\\.1:7861"), "127.0.0.1:" + std::to_string(a));
  upstream = std::regex_replace(upstream, std::regex("127\\.0\\.0\\.1:7862"), "127.0.0.1:" + std::to_string(b));
  std::string site = deploy_file("kakusan.conf");
  site = std::regex_replace(site, std::regex("listen 127\\.0\\.0\\.1:8080"), "listen 127.0.0.1:" + std::to_string(listen));
  dir.write("upstream.conf", upstream);
  dir.write("kakusan.conf", site);
  const std::string d = dir.path().string();
  for (const char* temp : {"body", "proxy", "fastcgi", "uwsgi", "scgi"}) {
    std::filesystem::create_directories(dir / temp);
    chmod((dir / temp).c_str(), 0777);  // nginx's workers may run as another user
  }
  chmod(dir.path().c_str(), 0755);
  return dir.write("nginx.conf", "daemon off;\nworker_processes 1;\npid " + d + "/nginx.pid;\nerror_log " + d +
                                     "/error.log;\nevents { worker_connections 512; }\nhttp {\n  access_log off;\n"
                                     "  client_body_temp_path " + d + "/body;\n  proxy_temp_path " + d + "/proxy;\n"
                                     "  fastcgi_temp_path " + d + "/fastcgi;\n  uwsgi_temp_path " + d + "/uwsgi;\n"
                                     "  scgi_temp_path " + d + "/scgi;\n  include " + d + "/upstream.conf;\n"
                                     "  include " + d + "/kakusan.conf;\n}\n");
}

TEST(LoadBalanced, TwoReplicasBehindNginxOneKilledHalfway) {
  KK_REQUIRE_GOLDEN();
  if (access(kNginx, X_OK) != 0) GTEST_SKIP() << kNginx << " not found (Debian package nginx)";
  const std::string model = (*testing::golden_dir() / "tiny-sd").string();
  const std::vector<std::string> flags = {"--queue-size", "32"};
  testing::ServeProcess a(model, flags), b(model, flags);
  ASSERT_TRUE(a.ready() && b.ready());

  testing::ScratchDir dir;
  const int port = testing::free_port();
  const auto conf = write_nginx_config(dir, port, a.port(), b.port());
  testing::ChildProcess nginx(kNginx, {"-p", dir.path().string(), "-c", conf.string()}, dir.path());
  httplib::Client front("127.0.0.1", port);
  front.set_read_timeout(60s);
  const auto up_deadline = Clock::now() + 30s;
  while (Clock::now() < up_deadline && !(front.Get("/health") && front.Get("/health")->status == 200))
    std::this_thread::sleep_for(20ms);
  ASSERT_EQ(front.Get("/health")->status, 200) << testing::read_text(dir / "error.log");

  std::atomic<int> next{0}, finished{0};
  std::mutex mutex;
  std::vector<double> latencies;
  std::map<int, int> by_status;  // 0: no answer (connection error or timeout)
  std::map<std::string, int> no_answer;  // why, as the client saw it, with the request's latency
  std::atomic<bool> killed{false};
  const auto start = Clock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c)
    clients.emplace_back([&] {
      httplib::Client http("127.0.0.1", port);
      http.set_read_timeout(60s);
      for (int i = next++; i < kRequests; i = next++) {
        const std::string body = R"({"prompt":"load )" + std::to_string(i) +
                                 R"(","steps":2,"width":64,"height":64,"seed":)" + std::to_string(i) + "}";
        const auto t0 = Clock::now();
        auto r = http.Post("/sdapi/v1/txt2img", body, "application/json");
        const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        {
          std::lock_guard lock(mutex);
          latencies.push_back(seconds);
          ++by_status[r ? r->status : 0];
          if (!r) {
            char seconds_text[32];
            std::snprintf(seconds_text, sizeof seconds_text, " after %.1f s", seconds);
            ++no_answer[httplib::to_string(r.error()) + seconds_text];
          }
        }
        if (++finished == kRequests / 2 && !killed.exchange(true)) kill(a.child().pid(), SIGKILL);
      }
    });
  for (auto& t : clients) t.join();
  const double total = std::chrono::duration<double>(Clock::now() - start).count();
  nginx.kill_now();

  std::sort(latencies.begin(), latencies.end());
  ASSERT_EQ(latencies.size(), size_t(kRequests));
  const double p50 = latencies[latencies.size() / 2], p99 = latencies[latencies.size() * 99 / 100];
  std::string statuses;
  for (const auto& [status, count] : by_status) {
    statuses.append(" ").append(std::to_string(status)).append(":").append(std::to_string(count));
  }
  std::printf("load: %d requests, %d clients, 2 replicas (one killed at %d): %.1f s, %.2f req/s, p50 %.3f s, "
              "p99 %.3f s, status:count%s\n",
              kRequests, kClients, kRequests / 2, total, kRequests / total, p50, p99, statuses.c_str());
  EXPECT_TRUE(killed);
  std::string why;
  for (const auto& [error, count] : no_answer) why.append("\n  ").append(error).append(" x").append(std::to_string(count));
  EXPECT_EQ(by_status.count(0), 0u) << "requests without an answer:" << statuses << why << "\nnginx's error.log:\n"
                                    << testing::read_text(dir / "error.log");
  for (const auto& [status, count] : by_status)
    EXPECT_TRUE(status == 200 || status == 502 || status == 503 || status == 504) << status << " x" << count;
  EXPECT_GE(by_status[200], kRequests * 9 / 10) << statuses;  // the survivor takes the load
}

}  // namespace
}  // namespace kakusan
