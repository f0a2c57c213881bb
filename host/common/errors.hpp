// The two kinds of failure the CLI distinguishes (ARCHITECTURE.md §4): bad input or configuration
// (exit 2, one clear line: what, where, what is expected) and internal failure (exit 1).
#pragma once
#include <stdexcept>
#include <string>

namespace keel {

// Bad input: a file, flag, parameter or plugin the user gave us. Exit code 2.
struct UserError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A plugin failed while running (a hook returned an error or threw). Exit code 1; the message
// names the plugin and the hook.
struct PluginError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace keel
