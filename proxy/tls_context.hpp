// OpenSSL contexts built from the configuration (when a snapshot is built, so SIGHUP
// re-reads certificates and a bad file fails the reload with its name).
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>

#include "config/config.hpp"

namespace gp::proxy {

// Listener side: TLS 1.2 and 1.3 only, Mozilla "intermediate" ciphers for 1.2, ALPN
// http/1.1, extra certificates selected by SNI. Throws config::Error naming the file.
std::shared_ptr<boost::asio::ssl::context> make_server_context(const config::Listener& listener);

// Upstream side: peer and host name verification on unless verify: false, system trust
// store unless ca_file, optional client certificate. Throws config::Error naming the file.
std::shared_ptr<boost::asio::ssl::context> make_client_context(const config::Cluster& cluster);

}  // namespace gp::proxy
