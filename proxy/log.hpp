// Structured one-line logging (logfmt) to stderr. Each line is written with a single
// write(2), so lines from different workers never interleave.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace gp::proxy::log {

enum class Level { debug, info, warn, error };
enum class Format { text, json };  // text: logfmt; json: one object per line

// Appends v as a JSON string literal (quotes and escapes); shared with the access log.
void append_json_string(std::string& out, std::string_view v);

void set_min_level(Level level);
void set_format(Format format);
bool enabled(Level level);
void write(Level level, std::string_view line);

// Builds "ts=... level=... msg="..." key=value ..." (or the same as a JSON object) and
// writes it when destroyed.
class Line {
 public:
  Line(Level level, std::string_view msg);
  ~Line();
  Line(const Line&) = delete;
  Line& operator=(const Line&) = delete;

  template <class T>
  Line& kv(std::string_view key, const T& value) {
    if (active_) {
      std::ostringstream v;
      v << value;
      add(key, v.str());
    }
    return *this;
  }

 private:
  void add(std::string_view key, std::string_view value);
  Level level_;
  bool active_;
  bool json_;
  std::string out_;
};

inline Line debug(std::string_view msg) {
  return Line(Level::debug, msg);
}
inline Line info(std::string_view msg) {
  return Line(Level::info, msg);
}
inline Line warn(std::string_view msg) {
  return Line(Level::warn, msg);
}
inline Line error(std::string_view msg) {
  return Line(Level::error, msg);
}

}  // namespace gp::proxy::log
