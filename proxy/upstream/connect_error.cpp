#include "proxy/upstream/connect_error.hpp"

#include <cerrno>

namespace gp::proxy {

bool is_local_overload(const boost::system::error_code& ec) {
  if (ec.category() != boost::system::system_category() &&
      ec.category() != boost::system::generic_category())
    return false;
  const int v = ec.value();
  return v == EMFILE || v == ENFILE || v == ENOBUFS || v == ENOMEM;
}

}  // namespace gp::proxy
