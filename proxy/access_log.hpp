// The access log: one line per request (JSON or text), collected in a per-worker buffer
// and written in batches, so the request path never waits for the disk. The cohort
// bucket is logged, never the user's key: it may be personal data.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace gp::proxy {

struct AccessEntry {
  std::chrono::system_clock::time_point time;
  std::string_view route;    // "none" when no route matched
  std::string_view version;  // stable | canary
  std::string_view method;
  std::string_view path;  // without the query string
  unsigned status = 0;
  std::chrono::nanoseconds duration{0};
  std::string_view upstream;     // endpoint address, "" when none was reached
  std::uint64_t bytes_in = 0;    // request body bytes
  std::uint64_t bytes_out = 0;   // response body bytes
  std::uint32_t bucket = 10000;  // cohort bucket; 10000 = none (override, no split)
  std::string_view peer;
};

// The file, shared by the workers; reopened on SIGUSR1 (logrotate moves it away first).
class AccessLogFile {
 public:
  AccessLogFile(std::string path, bool json);  // throws std::system_error
  ~AccessLogFile();
  bool json() const { return json_; }
  void reopen();  // keeps the old file on failure
  // Appends whole lines: O_APPEND keeps each worker's batch in one piece.
  void write(std::string_view lines) const;

 private:
  int open_file() const;
  std::string path_;
  bool json_;
  std::atomic<int> fd_{-1};
};

// Formats one entry and appends it to `out`.
void format_access_line(std::string& out, const AccessEntry& e, bool json);

}  // namespace gp::proxy
