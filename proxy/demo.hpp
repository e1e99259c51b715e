// `grayproxy --demo`: two built-in upstreams (answering "stable" and "canary") and an
// embedded configuration in front of them, so the split is visible with plain curl.
#pragma once

#include <memory>
#include <string>

#include "config/config.hpp"

namespace gp::proxy {

class DemoUpstreams {
 public:
  DemoUpstreams();  // starts both on free loopback ports, on a thread of their own
  ~DemoUpstreams();
  unsigned short stable_port() const;
  unsigned short canary_port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The embedded demo configuration, pointing at the demo upstreams.
config::Config demo_config(const DemoUpstreams& upstreams, const std::string& listen,
                           const std::string& admin);

// What to try, printed to stdout at startup.
std::string demo_banner(const config::Config& cfg);

}  // namespace gp::proxy
