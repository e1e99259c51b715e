#include "proxy/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <string>
#include <vector>

#include "proxy/log.hpp"

namespace gp::proxy {

namespace ssl = boost::asio::ssl;

namespace {

// Mozilla "intermediate" (v5.7) TLS 1.2 cipher list; TLS 1.3 suites are OpenSSL's defaults.
constexpr const char* kIntermediateCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

[[noreturn]] void fail(const std::string& what, const std::string& file) {
  throw config::Error(what + ": " + file + ": " + openssl_error());
}

void base_settings(SSL_CTX* ctx) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);  // idle connections keep no TLS buffers
  if (SSL_CTX_set_cipher_list(ctx, kIntermediateCiphers) != 1)
    throw config::Error("cannot set the TLS cipher list: " + openssl_error());
}

void load_pair(SSL_CTX* ctx, const std::string& context, const std::string& cert,
               const std::string& key) {
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1)
    fail(context + ": cannot load certificate", cert);
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1)
    fail(context + ": cannot load private key", key);
  if (SSL_CTX_check_private_key(ctx) != 1)
    throw config::Error(context + ": private key " + key + " does not match certificate " + cert);
}

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kHttp11, sizeof kHttp11, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;  // a client without http/1.1 still gets HTTP/1.1
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// The SNI map lives beside the default context; OpenSSL calls back with the name.
struct SniMap {
  struct Entry {
    std::vector<std::string> names;
    std::shared_ptr<ssl::context> ctx;
  };
  std::vector<Entry> entries;
};

bool name_matches(const std::string& pattern, std::string_view name) {
  if (pattern.starts_with("*.")) {
    std::string_view suffix = std::string_view(pattern).substr(1);  // ".example.com"
    return name.size() > suffix.size() && name.ends_with(suffix);
  }
  return pattern == name;
}

int select_certificate(SSL* ssl, int*, void* arg) {
  const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!sni) return SSL_TLSEXT_ERR_OK;
  std::string name(sni);
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto* map = static_cast<SniMap*>(arg);
  for (auto const& e : map->entries)
    for (auto const& pattern : e.names)
      if (name_matches(pattern, name)) {
        SSL_set_SSL_CTX(ssl, e.ctx->native_handle());
        return SSL_TLSEXT_ERR_OK;
      }
  return SSL_TLSEXT_ERR_OK;  // default certificate
}

std::shared_ptr<ssl::context> server_context(const std::string& context, const std::string& cert,
                                             const std::string& key) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  base_settings(ctx->native_handle());
  load_pair(ctx->native_handle(), context, cert, key);
  SSL_CTX_set_alpn_select_cb(ctx->native_handle(), select_alpn, nullptr);
  return ctx;
}

}  // namespace

std::shared_ptr<ssl::context> make_server_context(const config::Listener& listener) {
  const auto& tls = *listener.tls;
  const std::string context = "listener " + listener.name;
  auto ctx = server_context(context, tls.cert_file, tls.key_file);
  if (!tls.certificates.empty()) {
    auto map = std::make_shared<SniMap>();
    for (auto const& c : tls.certificates)
      map->entries.push_back({c.server_names, server_context(context, c.cert_file, c.key_file)});
    SSL_CTX_set_tlsext_servername_callback(ctx->native_handle(), select_certificate);
    SSL_CTX_set_tlsext_servername_arg(ctx->native_handle(), map.get());
    // The map must live as long as the default context: share ownership through it.
    return std::shared_ptr<ssl::context>(ctx.get(), [ctx, map](ssl::context*) {});
  }
  return ctx;
}

std::shared_ptr<ssl::context> make_client_context(const config::Cluster& cluster) {
  const auto& tls = *cluster.tls;
  const std::string context = "cluster " + cluster.name;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  base_settings(ctx->native_handle());
  SSL_CTX_set_alpn_protos(ctx->native_handle(),
                          reinterpret_cast<const unsigned char*>("\x08http/1.1"), 9);
  // Sessions are cached by the pool per endpoint, for resumption on new connections.
  SSL_CTX_set_session_cache_mode(ctx->native_handle(), SSL_SESS_CACHE_CLIENT);
  if (tls.verify) {
    ctx->set_verify_mode(ssl::verify_peer);
    if (!tls.ca_file.empty()) {
      if (SSL_CTX_load_verify_locations(ctx->native_handle(), tls.ca_file.c_str(), nullptr) != 1)
        fail(context + ": cannot load CA file", tls.ca_file);
    } else if (SSL_CTX_set_default_verify_paths(ctx->native_handle()) != 1) {
      throw config::Error(context + ": cannot load the system trust store: " + openssl_error());
    }
  } else {
    ctx->set_verify_mode(ssl::verify_none);
    log::warn("TLS verification of upstream certificates is off").kv("cluster", cluster.name);
  }
  if (!tls.cert_file.empty()) load_pair(ctx->native_handle(), context, tls.cert_file, tls.key_file);
  return ctx;
}

}  // namespace gp::proxy
