// Internal to config/: typed, strict reads of yaml-cpp nodes that throw Error with
// "file:line:col: key.path: what was expected, got X". Used by parse.cpp.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace gp::config::detail {

// 1-based position of a node; 1:1 when yaml-cpp has none.
Mark mark_of(const YAML::Node& node);

// How a value is shown after "got": a map, a sequence, null, 140, "yes please".
std::string describe(const YAML::Node& node);

// A string in double quotes with control characters and quotes escaped, long ones cut.
std::string quote(std::string_view text);

// A node with the key path that leads to it and the place to point at in messages
// (the key's place when the value is empty, since yaml-cpp puts no mark on those).
struct Value {
  YAML::Node node;
  std::string path;
  Mark mark;      // where the value is (its key's place when it is empty)
  Mark key_mark;  // where its key is (the item itself for list items)
};

class Reader;

// The entries of one YAML map, checked against the keys it may have.
class Map {
 public:
  const Value* find(std::string_view key) const;  // nullptr when absent
  const Value& need(std::string_view key) const;  // Error when absent
  bool has(std::string_view key) const { return find(key) != nullptr; }
  const Mark& mark() const { return mark_; }
  const std::string& path() const { return path_; }
  const std::vector<Value>& entries() const { return entries_; }

 private:
  friend class Reader;
  const Reader* reader_ = nullptr;
  std::string path_;
  Mark mark_;
  std::vector<std::string> keys_;  // parallel to entries_
  std::vector<Value> entries_;
};

class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  const std::string& source() const { return source_; }

  // "source:line:col: path: what" (the path and its colon left out when empty).
  std::string format(const Mark& at, const std::string& path, const std::string& what) const;
  [[noreturn]] void fail(const Mark& at, const std::string& path, const std::string& what) const;
  // "what, got X" at the value.
  [[noreturn]] void fail_got(const Value& v, const std::string& what) const;

  Map map(const Value& v, std::initializer_list<std::string_view> allowed) const;
  std::vector<Value> list(const Value& v) const;

  std::string string(const Value& v) const;           // any scalar, may be ""
  std::string nonempty_string(const Value& v) const;  // any scalar but ""
  bool boolean(const Value& v) const;                 // true/false (YAML 1.2 core spellings)
  // Decimal integer in [min, max]; "must be at least MIN" when max is the type maximum.
  std::uint64_t integer(const Value& v, std::uint64_t min, std::uint64_t max) const;
  double number(const Value& v, double min, double max) const;  // finite, in [min, max]
  Duration duration(const Value& v) const;                      // any, including 0
  Duration positive_duration(const Value& v) const;             // > 0
  Address address(const Value& v) const;
  std::uint32_t percent_bp(const Value& v) const;
  // One of `choices`, returning its index.
  std::size_t choice(const Value& v, std::initializer_list<std::string_view> choices) const;
  // [A-Za-z0-9_.-]+, for names that end up in metric labels, URLs and file names.
  std::string name(const Value& v) const;

  static Value child(const Value& parent, std::size_t index, const YAML::Node& node);

 private:
  std::string scalar(const Value& v, const char* expected) const;
  std::string source_;
};

}  // namespace gp::config::detail
