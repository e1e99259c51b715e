// libFuzzer target for the configuration loader: any bytes go to gp::config::parse. The only
// acceptable outcomes are a Config or a gp::config::Error; any other exception escaping, a
// crash, a sanitizer report, a leak or a hang is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <typeinfo>

#include "config/config.hpp"
#include "watchdog.hpp"

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  gp::fuzz::Watchdog::start(argc, argv);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const gp::fuzz::Watchdog::Scope watch(data, size);
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const gp::config::Config cfg = gp::config::parse(text, "fuzz.yaml");
    // A valid config must be internally consistent: every route names existing clusters.
    for (auto const& r : cfg.routes) {
      if (!cfg.find_cluster(r.stable)) {
        std::fprintf(stderr, "route %s: stable cluster %s not found\n", r.name.c_str(),
                     r.stable.c_str());
        std::abort();
      }
      if (!r.canary.empty() && !cfg.find_cluster(r.canary)) {
        std::fprintf(stderr, "route %s: canary cluster %s not found\n", r.name.c_str(),
                     r.canary.c_str());
        std::abort();
      }
      if (r.split && r.split->weight_bp > 10000) {
        std::fprintf(stderr, "route %s: weight %u bp out of range\n", r.name.c_str(),
                     r.split->weight_bp);
        std::abort();
      }
    }
  } catch (const gp::config::Error&) {
    // Rejected with a message: the expected outcome for invalid input.
  } catch (const std::exception& e) {
    std::fprintf(stderr, "config::parse let a %s escape: %s\n", typeid(e).name(), e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "config::parse let a non-std exception escape\n");
    std::abort();
  }
  return 0;
}
