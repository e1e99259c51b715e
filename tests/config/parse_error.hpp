// The message of the config::Error that parse() throws for a YAML text, or "no error":
// what the config tests compare against.
#pragma once

#include <string>

#include "config/config.hpp"

namespace gp::config {

inline std::string parse_error(const std::string& yaml) {
  try {
    parse(yaml, "t.yaml");
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace gp::config
