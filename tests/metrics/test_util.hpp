// Helpers for reading samples out of the Prometheus text exposition in tests.
#pragma once

#include <cstdlib>
#include <limits>
#include <sstream>
#include <string>

namespace gp::metrics::test {

// Value of the sample whose "name{labels}" part is exactly `series`; NaN if absent.
inline double sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ')
      return std::strtod(line.c_str() + series.size() + 1, nullptr);
  }
  return std::numeric_limits<double>::quiet_NaN();
}

}  // namespace gp::metrics::test
