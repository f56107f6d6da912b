// Subcommands register themselves here (one tools/cli/cmd_*.cpp per subcommand), so adding a subcommand
// never touches main.cpp.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace kakusan::cli {

struct Command {
  std::string name;
  std::string description;
  // Adds the subcommand's options to `app`, and returns the function that runs it (exit code).
  std::function<std::function<int()>(CLI::App& app)> setup;
};

// Call from a static initialiser: `static const bool registered = register_command({...});`
bool register_command(Command command);

// Exit codes: 0 success, 1 runtime failure, 2 bad input (file, flag, config).
inline constexpr int kExitBadInput = 2;

}  // namespace kakusan::cli
