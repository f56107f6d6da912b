// The page at / in headless Chromium (Debian's chromium + chromium-driver, driven over WebDriver): fill the
// form, generate, see the image. The screenshot is written to serve_web_page.png in the working directory
// (the test's output) and its path printed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "serve_fixture.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kChromium = "/usr/bin/chromium";
constexpr const char* kDriver = "/usr/bin/chromedriver";
constexpr const char* kElementKey = "element-6066-11e4-a52e-4f735466cecf";  // W3C WebDriver's element reference

// A WebDriver session: every call checks the HTTP status and returns the JSON "value".
class Browser {
 public:
  explicit Browser(int port) : http_("127.0.0.1", port) { http_.set_read_timeout(60s); }

  json call(const std::string& method, const std::string& path, const json& body = json::object()) {
    const std::string url = session_.empty() ? path : "/session/" + session_ + path;
    httplib::Result r = method == "GET"      ? http_.Get(url)
                        : method == "DELETE" ? http_.Delete(url)
                                             : http_.Post(url, body.dump(), "application/json");
    EXPECT_TRUE(r) << method << " " << url << ": no answer from chromedriver";
    if (!r) return nullptr;
    EXPECT_EQ(r->status, 200) << method << " " << url << ": " << r->body;
    return json::parse(r->body, nullptr, false)["value"];
  }

  bool start() {
    const json caps = {{"capabilities",
                        {{"alwaysMatch",
                          {{"browserName", "chrome"},
                           {"goog:chromeOptions",
                            {{"binary", kChromium},
                             {"args", {"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                       "--window-size=900,1100"}}}}}}}}};
    const json value = call("POST", "/session", caps);
    if (!value.is_object() || !value.contains("sessionId")) return false;
    session_ = value["sessionId"];
    return true;
  }

  std::string find(const std::string& css) {
    const json v = call("POST", "/element", {{"using", "css selector"}, {"value", css}});
    EXPECT_TRUE(v.is_object() && v.contains(kElementKey)) << css << ": " << v.dump();
    return v.is_object() && v.contains(kElementKey) ? v[kElementKey].get<std::string>() : "";
  }

  void type(const std::string& css, const std::string& text) {
    const std::string id = find(css);
    call("POST", "/element/" + id + "/clear");
    call("POST", "/element/" + id + "/value", {{"text", text}});
  }

  json script(const std::string& source) { return call("POST", "/execute/sync", {{"script", source}, {"args", json::array()}}); }

  // Polls `source` (a script returning a value) until it is truthy or the deadline passes.
  json wait_for(const std::string& source, std::chrono::seconds timeout) {
    const auto deadline = Clock::now() + timeout;
    json v;
    while (Clock::now() < deadline) {
      v = script(source);
      if (!v.is_null() && v != false && v != 0 && v != "") return v;
      std::this_thread::sleep_for(50ms);
    }
    return v;
  }

  ~Browser() {
    if (!session_.empty()) call("DELETE", "");
  }

 private:
  httplib::Client http_;
  std::string session_;
};

TEST(WebPage, FillTheFormGenerateSeeTheImage) {
  KK_REQUIRE_GOLDEN();
  if (access(kChromium, X_OK) != 0 || access(kDriver, X_OK) != 0)
    GTEST_SKIP() << "headless Chromium not found (Debian packages chromium and chromium-driver)";
  testing::ServeProcess server((*testing::golden_dir() / "tiny-sd").string(), {});
  ASSERT_TRUE(server.ready());
  testing::ScratchDir dir;
  const int driver_port = testing::free_port();
  testing::ChildProcess driver(kDriver, {"--port=" + std::to_string(driver_port)}, dir.path());
  {
    httplib::Client probe("127.0.0.1", driver_port);
    const auto deadline = Clock::now() + 30s;
    while (Clock::now() < deadline && !probe.Get("/status")) std::this_thread::sleep_for(50ms);
  }
  Browser browser(driver_port);
  ASSERT_TRUE(browser.start()) << testing::read_text(dir / "stderr");
  browser.call("POST", "/url", {{"url", "http://127.0.0.1:" + std::to_string(server.port()) + "/"}});
  // The sampler list comes from /sdapi/v1/samplers once the page has loaded.
  ASSERT_EQ(browser.wait_for("return document.querySelectorAll('#sampler option').length > 1", 30s), true);
  browser.type("#prompt", "a lighthouse at dusk");
  browser.type("#steps", "3");
  browser.type("#width", "64");
  browser.type("#height", "64");
  browser.type("#seed", "5");
  browser.script("document.getElementById('sampler').value = 'Euler a'; return true;");
  browser.call("POST", "/element/" + browser.find("#generate") + "/click");
  const json width = browser.wait_for(
      "const img = document.querySelector('img.result'); return img && img.complete ? img.naturalWidth : 0;", 60s);
  EXPECT_EQ(width, 64) << browser.script("return document.getElementById('status').textContent;");
  EXPECT_EQ(browser.script("return document.getElementById('status').textContent;"), "done: seed 5");
  EXPECT_NE(browser.script("return document.querySelector('img.result').title;").get<std::string>().find(
                "Sampler: EulerAncestralDiscreteScheduler"),
            std::string::npos);
  EXPECT_EQ(browser.script("return document.getElementById('progress').value;"), 1);

  const json shot = browser.call("GET", "/screenshot");
  ASSERT_TRUE(shot.is_string());
  const PngContents png = testing::png_of_base64(shot);
  EXPECT_GT(png.image.width, 0);
  const auto out = std::filesystem::current_path() / "serve_web_page.png";
  write_png(out, png.image);
  std::printf("screenshot: %s\n", out.c_str());
}

}  // namespace
}  // namespace kakusan
