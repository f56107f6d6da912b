// kakusan: Stable Diffusion in C++. Each subcommand lives in its own cmd_*.cpp.
#include <cstdio>
#include <map>
#include <vector>

#include "core/error.h"
#include "command.h"

namespace kakusan::cli {

namespace {
std::vector<Command>& registry() {
  static std::vector<Command> commands;
  return commands;
}
}  // namespace

bool register_command(Command command) {
  registry().push_back(std::move(command));
  return true;
}

}  // namespace kakusan::cli

int main(int argc, char** argv) {
  using namespace kakusan::cli;
  CLI::App app{"kakusan (拡散): Stable Diffusion text-to-image in C++"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kakusan 0.1.0");
  std::map<CLI::App*, std::function<int()>> runners;
  for (Command& command : registry()) {
    CLI::App* sub = app.add_subcommand(command.name, command.description);
    runners[sub] = command.setup(*sub);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kExitBadInput;
  }
  for (auto& [sub, run] : runners) {
    if (!sub->parsed()) continue;
    try {
      return run();
    } catch (const kakusan::Error& e) {
      std::fprintf(stderr, "kakusan: error: %s\n", e.what());
      return kExitBadInput;
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "kakusan: error: out of memory\n");
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "kakusan: error: %s\n", e.what());
      return 1;
    }
  }
  return kExitBadInput;
}
