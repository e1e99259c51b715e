#include "proxy/server/request_log.hpp"

#include <string>

#include "proxy/access_log.hpp"
#include "proxy/server/worker.hpp"

namespace gp::proxy {

void record_metrics(Worker& w, const RequestInfo& info, unsigned status) {
  info.stats().record(w.index(), info.version, status,
                      std::chrono::steady_clock::now() - info.start, info.aa_half());
}

void record_request(Worker& w, const RequestInfo& info, unsigned status, std::string_view peer) {
  const auto elapsed = std::chrono::steady_clock::now() - info.start;
  info.stats().record(w.index(), info.version, status, elapsed, info.aa_half());
  if (!w.access_log_enabled()) return;
  const std::string upstream = info.upstream.port() ? info.upstream.address().to_string() + ":" +
                                                          std::to_string(info.upstream.port())
                                                    : std::string();
  AccessEntry e;
  e.time = std::chrono::system_clock::now();
  e.route = info.route ? std::string_view(info.route->config->name) : std::string_view("none");
  e.version = config::to_string(info.version);
  e.method = info.method_text.empty() ? std::string_view("-") : std::string_view(info.method_text);
  e.path = info.path.empty() ? std::string_view("-") : std::string_view(info.path);
  e.status = status;
  e.duration = elapsed;
  e.upstream = upstream;
  e.bytes_in = info.bytes_in;
  e.bytes_out = info.bytes_out;
  e.bucket = info.bucket;
  e.peer = peer;
  w.access(e);
}

}  // namespace gp::proxy
