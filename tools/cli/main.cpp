// kakusan: Stable Diffusion in C++. Each subcommand lives in its own cmd_*.cpp.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
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

namespace {

// The programs beside this one that run subcommands it does not have, as git's external commands: `kakusan
// serve ...` runs `kakusan-serve serve ...` (the server's libraries stay out of every other command).
const std::map<std::string, std::string> kExternalCommands = {{"serve", "kakusan-serve"}};

// Runs an external subcommand if argv names one this program lacks; returns only if it does not.
void run_external_command(int argc, char** argv) {
  if (argc < 2) return;
  const auto external = kExternalCommands.find(argv[1]);
  if (external == kExternalCommands.end()) return;
  for (const Command& command : registry())
    if (command.name == argv[1]) return;
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::filesystem::path program = (ec ? std::filesystem::path(argv[0]) : self).parent_path() / external->second;
  std::vector<char*> args(argv, argv + argc);
  const std::string name = external->second;
  args[0] = const_cast<char*>(name.c_str());
  args.push_back(nullptr);
  ::execv(program.c_str(), args.data());
  std::fprintf(stderr, "kakusan: error: `%s` runs %s, which was not found beside this program\n", argv[1],
               program.c_str());
  std::exit(kExitBadInput);
}

}  // namespace
}  // namespace kakusan::cli

int main(int argc, char** argv) {
  using namespace kakusan::cli;
  run_external_command(argc, argv);
  CLI::App app{"kakusan (拡散): Stable Diffusion text-to-image in C++"};
  app.footer("serve: an HTTP image service (kakusan-serve; `kakusan serve --help`)");
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
