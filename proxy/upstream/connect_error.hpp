// What a failed upstream connect says about whom to blame.
#pragma once

#include <boost/system/error_code.hpp>

namespace gp::proxy {

// The proxy itself is out of file descriptors (EMFILE, ENFILE), socket buffers (ENOBUFS) or
// kernel memory for a socket (ENOMEM): a local overload, not a failing endpoint, so it must
// not eject one.
bool is_local_overload(const boost::system::error_code& ec);

}  // namespace gp::proxy
