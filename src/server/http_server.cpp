#include "server/http_server.h"

#include <httplib.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <set>
#include <thread>

#include "server/client_socket.h"
#include "server/web_page.h"

namespace kakusan::server {
namespace {

using namespace std::chrono_literals;

void send(httplib::Response& res, const Reply& reply) {
  res.status = reply.status;
  for (const auto& [key, value] : reply.headers) res.set_header(key, value);
  res.set_content(reply.body, "application/json");
}

// Routes are metric labels only when they are ours: a client cannot grow the label set.
std::string route_label(const std::string& path) {
  static const std::set<std::string> routes = {
      "/", "/health", "/health/live", "/metrics", "/sdapi/v1/txt2img", "/sdapi/v1/img2img", "/sdapi/v1/progress", "/sdapi/v1/interrupt",
      "/sdapi/v1/samplers", "/sdapi/v1/sd-models", "/sdapi/v1/options", "/v1/images/generations"};
  return routes.count(path) ? path : "other";
}

// Compares without stopping at the first difference, so the time taken says nothing about the key.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
  return diff == 0 && !b.empty();
}

// Probes and the page itself need no key; everything that generates or reports does.
bool needs_key(const std::string& path) { return path != "/health" && path != "/health/live" && path != "/"; }

int wake_pipe[2] = {-1, -1};

extern "C" void on_stop_signal(int) {
  const char byte = 'S';
  [[maybe_unused]] const ssize_t n = write(wake_pipe[1], &byte, 1);
}

}  // namespace

int serve(const ServeOptions& options) {
  // SIGTERM and SIGINT only write a byte into a pipe (threads started before us, e.g. by the BLAS library,
  // would not inherit a signal mask); one thread reads it and drains as ordinary code. The loader writes 'F'
  // there when the model cannot be loaded.
  if (pipe2(wake_pipe, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "kakusan: cannot create a pipe\n");
    return 1;
  }
  struct sigaction action {}, previous_term {}, previous_int {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, &previous_term);
  sigaction(SIGINT, &action, &previous_int);
  std::signal(SIGPIPE, SIG_IGN);  // a client gone mid-response must not end the server
  auto restore = [&] {
    sigaction(SIGTERM, &previous_term, nullptr);
    sigaction(SIGINT, &previous_int, nullptr);
    close(wake_pipe[0]);
    close(wake_pipe[1]);
  };

  ImageService service(options.service);
  httplib::Server http;
  std::atomic<int> in_flight{0};
  // Every waiting request holds a thread: enough for a full queue plus the quick endpoints.
  const size_t threads = options.service.queue_size + 16;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length(options.max_body_bytes);
  http.set_read_timeout(30s);
  http.set_write_timeout(30s);

  http.set_pre_routing_handler([&](const httplib::Request& req, httplib::Response& res) {
    if (options.api_key.empty() || !needs_key(req.path)) return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (auth.rfind(prefix, 0) == 0 && same_secret(auth.substr(prefix.size()), options.api_key))
      return httplib::Server::HandlerResponse::Unhandled;
    send(res, error_reply(401, "missing or wrong API key (Authorization: Bearer <key>)"));
    res.set_header("WWW-Authenticate", "Bearer");
    return httplib::Server::HandlerResponse::Handled;
  });

  auto generation = [&](Api api) {
    return [&, api](const httplib::Request& req, httplib::Response& res) {
      struct InFlight {
        std::atomic<int>& count;
        explicit InFlight(std::atomic<int>& c) : count(c) { ++count; }
        ~InFlight() { --count; }
      } counted(in_flight);
      int fd = -2;  // looked up on the first poll: most requests never need it
      auto abandoned = [&] {
        if (fd == -2) fd = find_client_socket(req.remote_addr, req.remote_port, req.local_port);
        return peer_closed(fd);
      };
      send(res, service.generate(api, req.body, abandoned));
    };
  };
  http.Post("/sdapi/v1/txt2img", generation(Api::A1111));
  http.Post("/sdapi/v1/img2img", generation(Api::A1111Img2Img));
  http.Post("/v1/images/generations", generation(Api::OpenAI));
  http.Get("/sdapi/v1/progress", [&](const httplib::Request&, httplib::Response& res) { send(res, service.progress()); });
  http.Post("/sdapi/v1/interrupt",
            [&](const httplib::Request&, httplib::Response& res) { send(res, service.interrupt()); });
  http.Get("/sdapi/v1/samplers", [&](const httplib::Request&, httplib::Response& res) { send(res, service.samplers()); });
  http.Get("/sdapi/v1/sd-models",
           [&](const httplib::Request&, httplib::Response& res) { send(res, service.sd_models()); });
  http.Get("/sdapi/v1/options", [&](const httplib::Request&, httplib::Response& res) { send(res, service.options()); });
  http.Post("/sdapi/v1/options", [&](const httplib::Request&, httplib::Response& res) {
    send(res, error_reply(405, "options are read-only on this server (the model and settings are fixed at start)"));
  });
  http.Get("/health", [&](const httplib::Request&, httplib::Response& res) { send(res, service.health()); });
  // Liveness: the process answers HTTP (loading and draining included, which /health reports as not ready).
  http.Get("/health/live", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"alive\"}", "application/json");
  });
  http.Get("/metrics", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(service.metrics_text(), "text/plain; version=0.0.4");
  });
  http.Get("/", [&](const httplib::Request&, httplib::Response& res) { res.set_content(web_page(), "text/html"); });

  // Whatever cpp-httplib answers itself (404, 405, 413 for an oversized body, 400 for a broken request) is
  // JSON too.
  http.set_error_handler([&](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    const char* what = res.status == 404   ? "no such endpoint"
                       : res.status == 413 ? "request body too large"
                       : res.status == 414 ? "request URI too long"
                       : res.status == 400 ? "malformed HTTP request"
                                           : "request refused";
    res.set_content(error_reply(res.status, what).body, "application/json");
  });
  http.set_exception_handler([&](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
    std::string message = "internal error";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      message = e.what();
    } catch (...) {
    }
    send(res, error_reply(500, message));
  });
  http.set_logger([&](const httplib::Request& req, const httplib::Response& res) {
    service.metrics().count_request(route_label(req.path), res.status);
  });

  // Port 0: any free port (the tests'), reported on the first line.
  const int port = options.port == 0 ? http.bind_to_any_port(options.host)
                                     : (http.bind_to_port(options.host, options.port) ? options.port : -1);
  if (port <= 0) {
    std::fprintf(stderr, "kakusan: cannot listen on %s:%d\n", options.host.c_str(), options.port);
    restore();
    return 1;
  }
  std::fprintf(stderr, "kakusan: listening on http://%s:%d (loading %s)\n", options.host.c_str(), port,
               options.service.model.c_str());

  std::atomic<int> exit_code{0};
  std::thread signal_thread([&] {
    char what = 0;
    while (read(wake_pipe[0], &what, 1) < 0 && errno == EINTR) {
    }
    if (what == 'F') {
      exit_code = 2;
    } else {
      std::fprintf(stderr, "kakusan: draining: finishing the accepted jobs, refusing new ones\n");
      service.drain();
      while (in_flight > 0) std::this_thread::sleep_for(10ms);
      std::fprintf(stderr, "kakusan: drained; exiting\n");
    }
    while (!http.is_running()) std::this_thread::sleep_for(10ms);
    http.stop();
  });
  service.start_loading([&](const std::string& error) {
    std::fprintf(stderr, "kakusan: cannot load the model: %s\n", error.c_str());
    const char failed = 'F';
    [[maybe_unused]] const ssize_t n = write(wake_pipe[1], &failed, 1);
  });
  http.listen_after_bind();
  signal_thread.join();
  restore();
  return exit_code;
}

}  // namespace kakusan::server
