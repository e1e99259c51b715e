#include "proxy/access_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <system_error>

#include "proxy/log.hpp"

namespace gp::proxy {

namespace {

void append_time(std::string& out, std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  out.append(buf);
}

}  // namespace

AccessLogFile::AccessLogFile(std::string path, bool json) : path_(std::move(path)), json_(json) {
  int fd = open_file();
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "access log " + path_);
  fd_.store(fd);
}

AccessLogFile::~AccessLogFile() {
  int fd = fd_.load();
  if (fd > STDOUT_FILENO) ::close(fd);
}

int AccessLogFile::open_file() const {
  if (path_ == "-") return STDOUT_FILENO;
  return ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

void AccessLogFile::reopen() {
  if (path_ == "-") return;
  int fd = open_file();
  if (fd < 0) {
    log::error("cannot reopen the access log, keeping the old file")
        .kv("path", path_)
        .kv("error", std::generic_category().message(errno));
    return;
  }
  int old = fd_.exchange(fd);
  // A worker may be writing to the old descriptor right now; closing it a little later
  // would need a grace period, so it is kept open: one descriptor per rotation, rarely.
  (void)old;
  log::info("access log reopened").kv("path", path_);
}

void AccessLogFile::write(std::string_view lines) const {
  const int fd = fd_.load(std::memory_order_relaxed);
  while (!lines.empty()) {
    ssize_t n = ::write(fd, lines.data(), lines.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // a full disk must not stop the proxy
    lines.remove_prefix(static_cast<std::size_t>(n));
  }
}

void format_access_line(std::string& out, const AccessEntry& e, bool json) {
  const double ms = std::chrono::duration<double, std::milli>(e.duration).count();
  char num[32];
  std::snprintf(num, sizeof num, "%.3f", ms);
  if (json) {
    out.append("{\"time\":\"");
    append_time(out, e.time);
    out.append("\",\"route\":");
    log::append_json_string(out, e.route);
    out.append(",\"version\":");
    log::append_json_string(out, e.version);
    out.append(",\"method\":");
    log::append_json_string(out, e.method);
    out.append(",\"path\":");
    log::append_json_string(out, e.path);
    out.append(",\"status\":").append(std::to_string(e.status));
    out.append(",\"duration_ms\":").append(num);
    out.append(",\"upstream\":");
    log::append_json_string(out, e.upstream);
    out.append(",\"bytes_in\":").append(std::to_string(e.bytes_in));
    out.append(",\"bytes_out\":").append(std::to_string(e.bytes_out));
    out.append(",\"bucket\":");
    if (e.bucket < 10000)
      out.append(std::to_string(e.bucket));
    else
      out.append("null");
    out.append(",\"peer\":");
    log::append_json_string(out, e.peer);
    out.append("}\n");
    return;
  }
  append_time(out, e.time);
  out.push_back(' ');
  out.append(e.peer.empty() ? "-" : e.peer).push_back(' ');
  out.append(e.route).push_back(' ');
  out.append(e.version).push_back(' ');
  out.append(e.method).push_back(' ');
  out.append(e.path).push_back(' ');
  out.append(std::to_string(e.status)).push_back(' ');
  out.append(num).append("ms ");
  out.append(e.upstream.empty() ? "-" : e.upstream).push_back(' ');
  out.append(std::to_string(e.bytes_in)).push_back(' ');
  out.append(std::to_string(e.bytes_out)).push_back(' ');
  out.append(e.bucket < 10000 ? std::to_string(e.bucket) : std::string("-"));
  out.push_back('\n');
}

}  // namespace gp::proxy
