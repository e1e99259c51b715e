#include "proxy/state_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace gp::proxy {

namespace {

std::string errno_text(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

bool write_all(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

StateFile::StateFile(std::string dir) : dir_(std::move(dir)) {
  if (!dir_.empty()) path_ = dir_ + "/rollout-state.json";
}

StateFile::Loaded StateFile::load() const {
  Loaded out;
  if (!enabled()) return out;
  std::ifstream in(path_, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return out;  // first start
    out.corrupt = true;
    out.error = errno_text(path_);
  } else {
    std::stringstream ss;
    ss << in.rdbuf();
    boost::system::error_code ec;
    auto v = boost::json::parse(ss.str(), ec);
    if (ec || !v.is_object()) {
      out.corrupt = true;
      out.error = path_ + ": not a JSON object" + (ec ? ": " + ec.message() : std::string());
    } else {
      out.doc = std::move(v.as_object());
      return out;
    }
  }
  // Keep the evidence for the operator, and start from the configuration.
  ::rename(path_.c_str(), (path_ + ".corrupt").c_str());
  return out;
}

std::string StateFile::save(const boost::json::object& doc) const {
  if (!enabled()) return "";
  ::mkdir(dir_.c_str(), 0755);  // EEXIST is fine; other errors surface at open()
  const std::string tmp = path_ + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno_text(tmp);
  const std::string text = boost::json::serialize(doc) + "\n";
  if (!write_all(fd, text) || ::fsync(fd) != 0) {
    auto err = errno_text(tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return err;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    auto err = errno_text(path_);
    ::unlink(tmp.c_str());
    return err;
  }
  // The rename is durable only once the directory entry is.
  int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return "";
}

}  // namespace gp::proxy
