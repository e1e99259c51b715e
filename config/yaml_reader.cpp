#include "config/yaml_reader.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

#include "config/address.hpp"
#include "config/duration.hpp"
#include "config/percent.hpp"

namespace gp::config::detail {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// [-+]?digits(.digits)?([eE][-+]?digits)?  (what is shown unquoted and read as a number)
bool looks_numeric(std::string_view s) {
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  const std::size_t int_start = i;
  while (i < s.size() && is_digit(s[i])) ++i;
  if (i == int_start) return false;
  if (i < s.size() && s[i] == '.') {
    const std::size_t frac_start = ++i;
    while (i < s.size() && is_digit(s[i])) ++i;
    if (i == frac_start) return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    const std::size_t exp_start = i;
    while (i < s.size() && is_digit(s[i])) ++i;
    if (i == exp_start) return false;
  }
  return i == s.size();
}

bool is_plain(const YAML::Node& node) {
  return node.Tag() == "?";
}

std::string format_number(double d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", d);
  return buf;
}

std::string one_of(std::initializer_list<std::string_view> choices) {
  std::string out;
  std::size_t i = 0;
  for (auto c : choices) {
    if (i > 0) out += (i + 1 == choices.size()) ? " or " : ", ";
    out += c;
    ++i;
  }
  return out;
}

std::string join_path(const std::string& parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return parent + "." + std::string(key);
}

}  // namespace

Mark mark_of(const YAML::Node& node) {
  const YAML::Mark m = node.Mark();
  if (m.is_null() || m.line < 0 || m.column < 0) return Mark{1, 1};
  return Mark{m.line + 1, m.column + 1};
}

std::string quote(std::string_view text) {
  constexpr std::size_t kMax = 60;
  std::string out = "\"";
  std::size_t n = 0;
  for (char c : text) {
    if (n++ == kMax) {
      out += "...";
      break;
    }
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

std::string describe(const YAML::Node& node) {
  if (!node.IsDefined()) return "nothing";
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Map:
      return node.size() == 0 ? "an empty map" : "a map";
    case YAML::NodeType::Sequence:
      return node.size() == 0 ? "an empty sequence" : "a sequence";
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      if (is_plain(node) && (looks_numeric(s) || s == "true" || s == "false")) return s;
      return quote(s);
    }
    default:
      return "nothing";
  }
}

// ---- Map ----

const Value* Map::find(std::string_view key) const {
  for (std::size_t i = 0; i < keys_.size(); ++i)
    if (keys_[i] == key) return &entries_[i];
  return nullptr;
}

const Value& Map::need(std::string_view key) const {
  if (const Value* v = find(key)) return *v;
  reader_->fail(mark_, join_path(path_, key), "required key is missing");
}

// ---- Reader ----

std::string Reader::format(const Mark& at, const std::string& path, const std::string& what) const {
  std::string out =
      source_ + ":" + std::to_string(at.line) + ":" + std::to_string(at.column) + ": ";
  if (!path.empty()) out += path + ": ";
  out += what;
  return out;
}

void Reader::fail(const Mark& at, const std::string& path, const std::string& what) const {
  throw Error(format(at, path, what));
}

void Reader::fail_got(const Value& v, const std::string& what) const {
  fail(v.mark, v.path, what + ", got " + describe(v.node));
}

Map Reader::map(const Value& v, std::initializer_list<std::string_view> allowed) const {
  if (!v.node.IsMap()) fail_got(v, "expected a map");
  Map m;
  m.reader_ = this;
  m.path_ = v.path;
  m.mark_ = v.mark;
  for (auto it = v.node.begin(); it != v.node.end(); ++it) {
    const YAML::Node key = it->first;  // copies: it-> yields a temporary
    const Mark key_mark = mark_of(key);
    if (!key.IsScalar())
      fail(key_mark, v.path, "expected a map with string keys, got " + describe(key) + " as a key");
    const std::string& k = key.Scalar();
    const std::string path = join_path(v.path, k);
    bool known = false;
    for (auto a : allowed) known = known || a == k;
    if (!known) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      fail(key_mark, path, "unknown key (expected one of: " + list + ")");
    }
    if (const Value* first = m.find(k))
      fail(key_mark, path,
           "duplicate key (first at line " + std::to_string(first->key_mark.line) + ")");
    const YAML::Node value = it->second;
    m.keys_.push_back(k);
    m.entries_.push_back(Value{value, path, value.IsNull() ? key_mark : mark_of(value), key_mark});
  }
  return m;
}

Value Reader::child(const Value& parent, std::size_t index, const YAML::Node& node) {
  const Mark at = node.IsNull() ? parent.mark : mark_of(node);
  return Value{node, parent.path + "[" + std::to_string(index) + "]", at, at};
}

std::vector<Value> Reader::list(const Value& v) const {
  if (!v.node.IsSequence()) fail_got(v, "expected a list");
  std::vector<Value> out;
  out.reserve(v.node.size());
  std::size_t i = 0;
  for (auto it = v.node.begin(); it != v.node.end(); ++it, ++i) out.push_back(child(v, i, *it));
  return out;
}

std::string Reader::scalar(const Value& v, const char* expected) const {
  if (!v.node.IsScalar()) fail_got(v, expected);
  return v.node.Scalar();
}

std::string Reader::string(const Value& v) const {
  return scalar(v, "expected a string");
}

std::string Reader::nonempty_string(const Value& v) const {
  std::string s = scalar(v, "expected a non-empty string");
  if (s.empty()) fail_got(v, "expected a non-empty string");
  return s;
}

bool Reader::boolean(const Value& v) const {
  const std::string s = scalar(v, "expected a boolean");
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  fail_got(v, "expected a boolean");
}

std::uint64_t Reader::integer(const Value& v, std::uint64_t min, std::uint64_t max) const {
  const std::string s = scalar(v, "expected an integer");
  std::size_t i = 0;
  bool negative = false;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) negative = s[i++] == '-';
  if (i == s.size()) fail_got(v, "expected an integer");
  std::uint64_t value = 0;
  bool overflow = false;
  for (; i < s.size(); ++i) {
    if (!is_digit(s[i])) fail_got(v, "expected an integer");
    const auto d = static_cast<std::uint64_t>(s[i] - '0');
    if (value > (std::numeric_limits<std::uint64_t>::max() - d) / 10) overflow = true;
    if (!overflow) value = value * 10 + d;
  }
  const bool below = negative ? (value != 0 || min > 0) : value < min;
  if (below || overflow || value > max) {
    if (max == std::numeric_limits<std::uint64_t>::max())
      fail_got(v, overflow ? "is too large" : "must be at least " + std::to_string(min));
    fail_got(v, "must be between " + std::to_string(min) + " and " + std::to_string(max));
  }
  return value;
}

double Reader::number(const Value& v, double min, double max) const {
  const std::string s = scalar(v, "expected a number");
  if (!looks_numeric(s)) fail_got(v, "expected a number");
  const char* first = s.data() + (s.front() == '+' ? 1 : 0);
  double d = 0;
  const auto [ptr, ec] = std::from_chars(first, s.data() + s.size(), d);
  const bool ok = ec == std::errc() && ptr == s.data() + s.size() && std::isfinite(d);
  if (!ok || d < min || d > max)
    fail_got(v, "must be between " + format_number(min) + " and " + format_number(max));
  return d;
}

Duration Reader::duration(const Value& v) const {
  const char* expected = "expected a duration like 250ms, 30s, 5m, 1h or 7d";
  const std::string s = scalar(v, expected);
  std::string error;
  const auto d = parse_duration(s, error);
  if (!d) fail_got(v, error);
  return *d;
}

Duration Reader::positive_duration(const Value& v) const {
  const Duration d = duration(v);
  if (d.count() <= 0) fail_got(v, "must be greater than 0");
  return d;
}

Address Reader::address(const Value& v) const {
  const std::string s = scalar(v, "expected host:port");
  std::string error;
  const auto a = parse_address(s, error);
  if (!a) fail_got(v, error);
  return *a;
}

std::uint32_t Reader::percent_bp(const Value& v) const {
  const std::string s = scalar(v, "expected a percentage between 0 and 100 like 10 or 12.5");
  std::string error;
  const auto p = parse_percent_bp(s, error);
  if (!p) fail_got(v, error);
  return *p;
}

std::size_t Reader::choice(const Value& v, std::initializer_list<std::string_view> choices) const {
  const std::string expected = "expected " + one_of(choices);
  const std::string s = scalar(v, expected.c_str());
  std::size_t i = 0;
  for (auto c : choices) {
    if (c == s) return i;
    ++i;
  }
  fail_got(v, expected);
}

std::string Reader::name(const Value& v) const {
  const char* expected = "expected a name of letters, digits, '_', '.' and '-'";
  std::string s = scalar(v, expected);
  bool ok = !s.empty();
  for (char c : s) {
    ok = ok && (is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                c == '.' || c == '-');
  }
  if (!ok) fail_got(v, expected);
  return s;
}

}  // namespace gp::config::detail
