// Durable state in state_dir: one JSON document, replaced atomically (temp file, fsync,
// rename, fsync of the directory), so a crash leaves either the old or the new file.
#pragma once

#include <boost/json/object.hpp>
#include <string>

namespace gp::proxy {

class StateFile {
 public:
  explicit StateFile(std::string dir);  // "" = no persistence
  bool enabled() const { return !dir_.empty(); }
  const std::string& path() const { return path_; }

  struct Loaded {
    boost::json::object doc;  // empty when there is no file or it was corrupt
    bool corrupt = false;     // unreadable or not JSON: moved aside to *.corrupt
    std::string error;
  };
  Loaded load() const;
  // Returns "" on success, else what failed.
  std::string save(const boost::json::object& doc) const;

 private:
  std::string dir_;
  std::string path_;
};

}  // namespace gp::proxy
