// The kinds of failure the CLI distinguishes (ARCHITECTURE.md §4): bad input or configuration
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

// Another process of a data-parallel run died, hung past [dist] timeout_s, or decided otherwise.
// Exit code 1; the message says which rank saw it and what the collective reported.
struct GroupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace keel
