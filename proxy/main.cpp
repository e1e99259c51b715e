// grayproxy: an HTTP/1.1 reverse proxy for gray releases.
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "proxy/cli.hpp"
#include "proxy/demo.hpp"
#include "proxy/log.hpp"
#include "proxy/server.hpp"

namespace {

constexpr const char* kUsage = R"(usage: grayproxy -c FILE            run with a configuration file
       grayproxy --check -c FILE    validate FILE and exit (0 valid, 1 invalid)
       grayproxy --demo [--listen HOST:PORT] [--admin HOST:PORT]
                                    run the built-in demo (default listen 127.0.0.1:8080,
                                    admin 127.0.0.1:9901)
       grayproxy --version
       grayproxy status [--admin URL]
                                    print the rollout table of a running proxy
       grayproxy promote|abort|pause|resume ROUTE [--admin URL] [--token-file FILE]
       grayproxy weight ROUTE PERCENT [--admin URL] [--token-file FILE]
                                    steer a rollout through the admin API
                                    (--admin default http://127.0.0.1:9901)
options: --log-level debug|info|warn|error   --log-format text|json
)";

int usage_error(const std::string& what) {
  std::fprintf(stderr, "grayproxy: %s\n%s", what.c_str(), kUsage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace gp;
  if (argc >= 2 && cli::is_command(argv[1])) return cli::run(argc, argv);
  std::string config_path;
  bool check = false;
  bool demo = false;
  std::string listen = "127.0.0.1:8080";
  std::string admin = "127.0.0.1:9901";

  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= argc) return std::nullopt;
      return std::string(argv[++i]);
    };
    if (arg == "--version" || arg == "-V") {
      std::printf("grayproxy %s\n", GRAYPROXY_VERSION);
      return 0;
    } else if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "-c" || arg == "--config") {
      auto v = value();
      if (!v) return usage_error(arg + " needs a file");
      config_path = *v;
    } else if (arg == "--check") {
      check = true;
    } else if (arg == "--demo") {
      demo = true;
    } else if (arg == "--listen" || arg == "--admin") {
      auto v = value();
      if (!v) return usage_error(arg + " needs HOST:PORT");
      (arg == "--listen" ? listen : admin) = *v;
    } else if (arg == "--log-format") {
      auto v = value();
      if (!v || (*v != "text" && *v != "json"))
        return usage_error("--log-format needs text or json");
      proxy::log::set_format(*v == "json" ? proxy::log::Format::json : proxy::log::Format::text);
    } else if (arg == "--log-level") {
      auto v = value();
      if (!v) return usage_error("--log-level needs a level");
      if (*v == "debug")
        proxy::log::set_min_level(proxy::log::Level::debug);
      else if (*v == "info")
        proxy::log::set_min_level(proxy::log::Level::info);
      else if (*v == "warn")
        proxy::log::set_min_level(proxy::log::Level::warn);
      else if (*v == "error")
        proxy::log::set_min_level(proxy::log::Level::error);
      else
        return usage_error("unknown log level " + *v);
    } else {
      return usage_error("unknown argument " + arg);
    }
  }

  if (check) {
    if (config_path.empty()) return usage_error("--check needs -c FILE");
    try {
      auto cfg = config::load_file(config_path);
      std::printf("%s: ok (%zu listeners, %zu clusters, %zu routes)\n", config_path.c_str(),
                  cfg.listeners.size(), cfg.clusters.size(), cfg.routes.size());
      return 0;
    } catch (const config::Error& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 1;
    }
  }

  try {
    if (demo) {
      proxy::DemoUpstreams upstreams;
      auto cfg = proxy::demo_config(upstreams, listen, admin);
      proxy::Server server(cfg, "");
      std::fputs(proxy::demo_banner(cfg).c_str(), stdout);
      std::fflush(stdout);
      return server.run();
    }
    if (config_path.empty()) return usage_error("no configuration: use -c FILE or --demo");
    proxy::Server server(config::load_file(config_path), config_path);
    return server.run();
  } catch (const config::Error& e) {
    std::fprintf(stderr, "grayproxy: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "grayproxy: cannot start: %s\n", e.what());
    return 1;
  }
}
