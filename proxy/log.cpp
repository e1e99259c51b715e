#include "proxy/log.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace gp::proxy::log {
namespace {

std::atomic<Level> g_min_level{Level::info};  // set once at startup
std::atomic<Format> g_format{Format::text};   // set once at startup

const char* name(Level level) {
  switch (level) {
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warn:
      return "warn";
    case Level::error:
      return "error";
  }
  return "?";
}

bool needs_quotes(std::string_view v) {
  if (v.empty()) return true;
  for (char c : v)
    if (c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x21) return true;
  return false;
}

void append_value(std::string& out, std::string_view v) {
  if (!needs_quotes(v)) {
    out.append(v);
    return;
  }
  out.push_back('"');
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out.push_back('?');
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

}  // namespace

void append_json_string(std::string& out, std::string_view v) {
  out.push_back('"');
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out.append(buf);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

void set_min_level(Level level) {
  g_min_level.store(level, std::memory_order_relaxed);
}
void set_format(Format format) {
  g_format.store(format, std::memory_order_relaxed);
}
bool enabled(Level level) {
  return level >= g_min_level.load(std::memory_order_relaxed);
}

void write(Level, std::string_view line) {
  std::string_view rest = line;
  while (!rest.empty()) {
    ssize_t n = ::write(STDERR_FILENO, rest.data(), rest.size());
    if (n <= 0) return;
    rest.remove_prefix(static_cast<size_t>(n));
  }
}

Line::Line(Level level, std::string_view msg)
    : level_(level),
      active_(enabled(level)),
      json_(g_format.load(std::memory_order_relaxed) == Format::json) {
  if (!active_) return;
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char ts[96];
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms.count()));
  out_.reserve(160);
  if (json_) {
    out_.append("{\"ts\":\"").append(ts).append("\",\"level\":\"").append(name(level));
    out_.append("\",\"msg\":");
    append_json_string(out_, msg);
    return;
  }
  out_.append("ts=").append(ts).append(" level=").append(name(level)).append(" msg=");
  append_value(out_, msg);
}

void Line::add(std::string_view key, std::string_view value) {
  if (json_) {
    out_.push_back(',');
    append_json_string(out_, key);
    out_.push_back(':');
    append_json_string(out_, value);
    return;
  }
  out_.push_back(' ');
  out_.append(key).push_back('=');
  append_value(out_, value);
}

Line::~Line() {
  if (!active_) return;
  if (json_) out_.push_back('}');
  out_.push_back('\n');
  write(level_, out_);
}

}  // namespace gp::proxy::log
