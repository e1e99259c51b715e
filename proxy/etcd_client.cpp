#include "proxy/etcd_client.hpp"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <charconv>

namespace gp::proxy {

namespace http = beast::http;
namespace json = boost::json;
using boost::system::error_code;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;
using Resolver = asio::ip::basic_resolver<tcp, Executor>;

namespace etcd {

namespace {

class Category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "etcd"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::http_status:
        return "etcd answered an error";
      case Errc::not_found:
        return "etcd: not found";
      case Errc::bad_response:
        return "etcd: unexpected response";
      case Errc::compacted:
        return "etcd: watch revision compacted";
      case Errc::watch_canceled:
        return "etcd: watch cancelled";
      case Errc::unavailable:
        return "etcd: unavailable";
    }
    return "etcd error";
  }
};

}  // namespace

const boost::system::error_category& category() {
  static const Category c;
  return c;
}

error_code make_error_code(Errc e) {
  return {static_cast<int>(e), category()};
}

std::string prefix_end(std::string prefix) {
  while (!prefix.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(prefix.back());
    if (last < 0xff) {
      ++last;
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');  // every key
}

}  // namespace etcd

namespace {

constexpr std::size_t kMaxIdle = 4;
constexpr std::uint64_t kBodyLimit = 64 * 1024 * 1024;

std::string b64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// False on input that is not base64.
bool unb64(std::string_view in, std::string& out) {
  if (in.size() % 4 != 0) return false;
  out.assign(in.size() / 4 * 3 + 1, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  if (n < 0) return false;
  std::size_t len = static_cast<std::size_t>(n);
  // EVP_DecodeBlock counts the padding as zero bytes.
  for (std::size_t i = in.size(); i > 0 && in[i - 1] == '=' && len > 0; --i) --len;
  out.resize(len);
  return true;
}

// The gateway writes int64 as strings, and leaves out zero values.
std::int64_t i64(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v) return 0;
  if (v->is_string()) {
    std::int64_t n = 0;
    auto const& s = v->as_string();
    std::from_chars(s.data(), s.data() + s.size(), n);
    return n;
  }
  if (v->is_number()) return v->to_number<std::int64_t>();
  return 0;
}

std::string str(std::int64_t n) {
  return std::to_string(n);
}

bool parse_kv(const json::object& o, etcd::KeyValue& kv) {
  auto const* k = o.if_contains("key");
  if (!k || !k->is_string() || !unb64(k->as_string(), kv.key)) return false;
  if (auto const* v = o.if_contains("value"); v && v->is_string()) {
    if (!unb64(v->as_string(), kv.value)) return false;
  }
  kv.create_revision = i64(o, "create_revision");
  kv.mod_revision = i64(o, "mod_revision");
  kv.lease = i64(o, "lease");
  return true;
}

std::int64_t header_revision(const json::object& o) {
  auto const* h = o.if_contains("header");
  return h && h->is_object() ? i64(h->as_object(), "revision") : 0;
}

bool parse_range(const json::object& o, etcd::Range& r) {
  r.revision = header_revision(o);
  if (auto const* kvs = o.if_contains("kvs"); kvs && kvs->is_array()) {
    for (auto const& v : kvs->as_array()) {
      if (!v.is_object()) return false;
      etcd::KeyValue kv;
      if (!parse_kv(v.as_object(), kv)) return false;
      r.kvs.push_back(std::move(kv));
    }
  }
  return true;
}

json::object put_json(const etcd::Put& p) {
  json::object o{{"key", b64(p.key)}, {"value", b64(p.value)}};
  if (p.lease) o["lease"] = str(p.lease);
  return o;
}

// Request bodies are built outside coroutines: g++ 12 miscompiles initializer lists in them.
std::string id_body(const char* name, std::int64_t id) {
  return json::serialize(json::object{{name, str(id)}});
}

std::string range_body(const std::string& key, bool prefix) {
  json::object req{{"key", b64(key)}};
  if (prefix) req["range_end"] = b64(etcd::prefix_end(key));
  return json::serialize(req);
}

std::string txn_body(const etcd::TxnRequest& t) {
  json::array cmp;
  for (auto const& c : t.compares) {
    json::object o{{"key", b64(c.key)}, {"result", "EQUAL"}};
    switch (c.target) {
      case etcd::Compare::Target::create:
        o["target"] = "CREATE";
        o["create_revision"] = str(c.number);
        break;
      case etcd::Compare::Target::mod:
        o["target"] = "MOD";
        o["mod_revision"] = str(c.number);
        break;
      case etcd::Compare::Target::value:
        o["target"] = "VALUE";
        o["value"] = b64(c.value);
        break;
      case etcd::Compare::Target::lease:
        o["target"] = "LEASE";
        o["lease"] = str(c.number);
        break;
    }
    cmp.push_back(std::move(o));
  }
  json::array ok, failure;
  for (auto const& p : t.success) ok.push_back(json::object{{"request_put", put_json(p)}});
  for (auto const& k : t.failure_reads)
    failure.push_back(json::object{{"request_range", json::object{{"key", b64(k)}}}});
  return json::serialize(
      json::object{{"compare", std::move(cmp)}, {"success", std::move(ok)}, {"failure", failure}});
}

std::string watch_body(const std::string& prefix, std::int64_t start_revision) {
  json::object create{{"key", b64(prefix)}, {"range_end", b64(etcd::prefix_end(prefix))}};
  if (start_revision > 0) create["start_revision"] = str(start_revision);
  return json::serialize(json::object{{"create_request", std::move(create)}});
}

template <class S>
Task<error_code> exchange(S& s, beast::flat_buffer& buffer, const Request& req, Response& res,
                          std::chrono::milliseconds timeout) {
  beast::get_lowest_layer(s).expires_after(timeout);
  auto [wec, wn] = co_await http::async_write(s, req, use_task);
  if (wec) co_return wec;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kBodyLimit);
  auto [rec, rn] = co_await http::async_read(s, buffer, parser, use_task);
  beast::get_lowest_layer(s).expires_never();
  if (rec) co_return rec;
  res = parser.release();
  co_return error_code{};
}

// Reads some of a streamed body into `out`; no deadline (a watch may be quiet for hours).
template <class S>
Task<error_code> read_some_body(S& s, beast::flat_buffer& buffer,
                                http::response_parser<http::buffer_body>& parser,
                                std::string& out) {
  char chunk[8192];
  parser.get().body().data = chunk;
  parser.get().body().size = sizeof chunk;
  auto [ec, n] = co_await http::async_read_some(s, buffer, parser, use_task);
  if (ec == http::error::need_buffer) ec = {};
  out.append(chunk, sizeof chunk - parser.get().body().size);
  co_return ec;
}

template <class S>
Task<error_code> start_stream(S& s, beast::flat_buffer& buffer, const Request& req,
                              http::response_parser<http::buffer_body>& parser,
                              std::chrono::milliseconds timeout) {
  beast::get_lowest_layer(s).expires_after(timeout);
  auto [wec, wn] = co_await http::async_write(s, req, use_task);
  if (wec) co_return wec;
  auto [rec, rn] = co_await http::async_read_header(s, buffer, parser, use_task);
  beast::get_lowest_layer(s).expires_never();
  co_return rec;
}

}  // namespace

struct EtcdClient::Conn {
  std::size_t endpoint;
  std::unique_ptr<Stream> plain;
  std::unique_ptr<TlsStream> tls;
  beast::flat_buffer buffer;

  Conn(Executor ex, std::size_t ep, asio::ssl::context* ctx) : endpoint(ep) {
    if (ctx)
      tls = std::make_unique<TlsStream>(ex, *ctx);
    else
      plain = std::make_unique<Stream>(ex);
  }
  Stream& lowest() { return tls ? tls->next_layer() : *plain; }
};

EtcdClient::EtcdClient(Executor ex, Options options)
    : ex_(std::move(ex)), options_(std::move(options)) {}

EtcdClient::~EtcdClient() = default;

std::string EtcdClient::endpoint() const {
  return options_.endpoints.empty() ? "" : options_.endpoints[current_].str();
}

void EtcdClient::cancel_watch() {
  if (!watch_conn_) return;
  error_code ignored;
  watch_conn_->lowest().socket().close(ignored);
}

Task<std::pair<error_code, std::unique_ptr<EtcdClient::Conn>>> EtcdClient::connect(
    std::size_t idx) {
  const config::Address& ep = options_.endpoints[idx];
  auto conn = std::make_unique<Conn>(ex_, idx, options_.tls.get());
  Resolver resolver(ex_);
  const std::string host = ep.host;
  const std::string port = std::to_string(ep.port);
  auto [rec, results] = co_await resolver.async_resolve(host, port, use_task);
  if (rec) co_return std::pair{rec, std::move(conn)};
  Stream& s = conn->lowest();
  s.expires_after(options_.timeout);
  auto [cec, connected] = co_await s.async_connect(results, use_task);
  if (cec) co_return std::pair{cec, std::move(conn)};
  error_code ignored;
  s.socket().set_option(tcp::no_delay(true), ignored);
  if (conn->tls) {
    SSL* ssl = conn->tls->native_handle();
    error_code addr_ec;
    asio::ip::make_address(ep.host, addr_ec);
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (addr_ec) {
      SSL_set_tlsext_host_name(ssl, ep.host.c_str());
      X509_VERIFY_PARAM_set1_host(param, ep.host.c_str(), ep.host.size());
    } else {
      X509_VERIFY_PARAM_set1_ip_asc(param, ep.host.c_str());
    }
    s.expires_after(options_.timeout);
    auto [hec] = co_await conn->tls->async_handshake(asio::ssl::stream_base::client, use_task);
    s.expires_never();
    if (hec) co_return std::pair{hec, std::move(conn)};
  }
  s.expires_never();
  co_return std::pair{error_code{}, std::move(conn)};
}

Task<std::pair<error_code, json::value>> EtcdClient::call(std::string path, std::string body) {
  error_code ec = asio::error::host_not_found;
  const std::size_t n = options_.endpoints.size();
  for (std::size_t attempt = 0; attempt < n; ++attempt) {
    const std::size_t idx = (current_ + attempt) % n;
    Request req{http::verb::post, path, 11};
    req.set(http::field::host, options_.endpoints[idx].str());
    req.set(http::field::content_type, "application/json");
    req.keep_alive(true);
    req.body() = body;
    req.prepare_payload();
    // A pooled connection may have been closed by etcd meanwhile: then one fresh try.
    for (int fresh = 0; fresh < 2; ++fresh) {
      std::unique_ptr<Conn> conn;
      if (fresh == 0) {
        for (auto it = idle_.begin(); it != idle_.end(); ++it) {
          if ((*it)->endpoint != idx) continue;
          conn = std::move(*it);
          idle_.erase(it);
          break;
        }
      }
      const bool pooled = conn != nullptr;
      if (!conn) {
        auto [cec, c] = co_await connect(idx);
        if (cec) {
          ec = cec;
          break;
        }
        conn = std::move(c);
      }
      Response res;
      error_code xec;
      if (conn->tls) {
        xec = co_await exchange(*conn->tls, conn->buffer, req, res, options_.timeout);
      } else {
        xec = co_await exchange(*conn->plain, conn->buffer, req, res, options_.timeout);
      }
      if (xec) {
        ec = xec;
        if (pooled) continue;
        break;
      }
      error_code pec;
      json::value doc = json::parse(res.body(), pec);
      const bool keep = res.keep_alive();
      if (keep && idle_.size() < kMaxIdle) idle_.push_back(std::move(conn));
      if (res.result() == http::status::service_unavailable) {
        ec = etcd::make_error_code(etcd::Errc::unavailable);  // no leader there: next endpoint
        last_error_ = options_.endpoints[idx].str() + ": " + res.body();
        break;
      }
      current_ = idx;
      if (pec || !doc.is_object()) {
        last_error_ = "unexpected response to " + path + ": " + res.body().substr(0, 200);
        co_return std::pair{etcd::make_error_code(etcd::Errc::bad_response), json::value{}};
      }
      // Streaming calls (lease keepalive) wrap their answer in "result".
      if (auto* r = doc.as_object().if_contains("result"); r && r->is_object()) doc = *r;
      const json::object& o = doc.as_object();
      if (res.result() != http::status::ok || o.contains("error")) {
        const bool not_found = i64(o, "code") == 5;  // gRPC NotFound
        last_error_ = path + ": " + res.body().substr(0, 200);
        co_return std::pair{
            etcd::make_error_code(not_found ? etcd::Errc::not_found : etcd::Errc::http_status),
            json::value{}};
      }
      co_return std::pair{error_code{}, std::move(doc)};
    }
    last_error_ = options_.endpoints[idx].str() + ": " + ec.message();
  }
  co_return std::pair{ec, json::value{}};
}

Task<std::pair<error_code, std::int64_t>> EtcdClient::lease_grant(std::int64_t ttl_seconds) {
  std::string body = id_body("TTL", ttl_seconds);
  auto [ec, doc] = co_await call("/v3/lease/grant", std::move(body));
  if (ec) co_return std::pair{ec, std::int64_t{0}};
  const std::int64_t id = i64(doc.as_object(), "ID");
  if (id == 0) co_return std::pair{etcd::make_error_code(etcd::Errc::bad_response), id};
  co_return std::pair{ec, id};
}

Task<std::pair<error_code, std::int64_t>> EtcdClient::lease_keepalive(std::int64_t id) {
  std::string body = id_body("ID", id);
  auto [ec, doc] = co_await call("/v3/lease/keepalive", std::move(body));
  if (ec) co_return std::pair{ec, std::int64_t{0}};
  co_return std::pair{ec, i64(doc.as_object(), "TTL")};  // absent: the lease is gone
}

Task<error_code> EtcdClient::lease_revoke(std::int64_t id) {
  std::string body = id_body("ID", id);
  auto [ec, doc] = co_await call("/v3/lease/revoke", std::move(body));
  co_return ec;
}

Task<std::pair<error_code, etcd::Range>> EtcdClient::range(std::string key, bool prefix) {
  std::string body = range_body(key, prefix);
  auto [ec, doc] = co_await call("/v3/kv/range", std::move(body));
  etcd::Range r;
  if (ec) co_return std::pair{ec, std::move(r)};
  if (!parse_range(doc.as_object(), r)) {
    last_error_ = "range: undecodable key or value";
    co_return std::pair{etcd::make_error_code(etcd::Errc::bad_response), std::move(r)};
  }
  co_return std::pair{ec, std::move(r)};
}

Task<error_code> EtcdClient::put(etcd::Put p) {
  std::string body = json::serialize(put_json(p));
  auto [ec, doc] = co_await call("/v3/kv/put", std::move(body));
  co_return ec;
}

Task<std::pair<error_code, etcd::TxnResult>> EtcdClient::txn(etcd::TxnRequest request) {
  std::string body = txn_body(request);
  auto [ec, doc] = co_await call("/v3/kv/txn", body);
  etcd::TxnResult t;
  if (ec) co_return std::pair{ec, std::move(t)};
  const json::object& o = doc.as_object();
  t.revision = header_revision(o);
  if (auto const* s = o.if_contains("succeeded"); s && s->is_bool()) t.succeeded = s->as_bool();
  if (auto const* rs = o.if_contains("responses"); rs && rs->is_array() && !t.succeeded) {
    for (auto const& r : rs->as_array()) {
      auto const* rr = r.is_object() ? r.as_object().if_contains("response_range") : nullptr;
      etcd::Range range;
      if (rr && rr->is_object() && !parse_range(rr->as_object(), range))
        co_return std::pair{etcd::make_error_code(etcd::Errc::bad_response), std::move(t)};
      t.reads.push_back(std::move(range));
    }
  }
  co_return std::pair{ec, std::move(t)};
}

Task<error_code> EtcdClient::watch(std::string prefix, std::int64_t start_revision,
                                   EventHandler on_events) {
  error_code ec = asio::error::host_not_found;
  const std::size_t n = options_.endpoints.size();
  const std::string body = watch_body(prefix, start_revision);
  for (std::size_t attempt = 0; attempt < n; ++attempt) {
    const std::size_t idx = (current_ + attempt) % n;
    auto [cec, conn] = co_await connect(idx);
    if (cec) {
      ec = cec;
      last_error_ = options_.endpoints[idx].str() + ": " + ec.message();
      continue;
    }
    Request req{http::verb::post, "/v3/watch", 11};
    req.set(http::field::host, options_.endpoints[idx].str());
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    error_code sec;
    if (conn->tls) {
      sec = co_await start_stream(*conn->tls, conn->buffer, req, parser, options_.timeout);
    } else {
      sec = co_await start_stream(*conn->plain, conn->buffer, req, parser, options_.timeout);
    }
    if (sec) {
      ec = sec;
      last_error_ = options_.endpoints[idx].str() + ": watch: " + ec.message();
      continue;
    }
    if (parser.get().result() != http::status::ok) {
      last_error_ = options_.endpoints[idx].str() + ": watch: HTTP " +
                    std::to_string(parser.get().result_int());
      co_return etcd::make_error_code(etcd::Errc::http_status);
    }
    current_ = idx;
    watch_conn_ = conn.get();
    std::string pending;
    // One JSON object per line (the gateway's stream delimiter).
    for (;;) {
      error_code rec;
      if (parser.is_done()) {
        rec = http::error::end_of_stream;
      } else if (conn->tls) {
        rec = co_await read_some_body(*conn->tls, conn->buffer, parser, pending);
      } else {
        rec = co_await read_some_body(*conn->plain, conn->buffer, parser, pending);
      }
      std::size_t start = 0;
      for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
        std::string_view line(pending.data() + start, nl - start);
        if (line.find_first_not_of(" \r\t") == std::string_view::npos) continue;
        error_code pec;
        json::value v = json::parse(line, pec);
        const json::object* o = !pec && v.is_object() ? &v.as_object() : nullptr;
        if (o)
          if (auto const* r = o->if_contains("result"); r && r->is_object()) o = &r->as_object();
        if (!o || o->contains("error")) {
          last_error_ = "watch: " + std::string(line.substr(0, 200));
          watch_conn_ = nullptr;
          co_return etcd::make_error_code(etcd::Errc::bad_response);
        }
        if (i64(*o, "compact_revision") > 0) {
          watch_conn_ = nullptr;
          co_return etcd::make_error_code(etcd::Errc::compacted);
        }
        if (auto const* c = o->if_contains("canceled"); c && c->is_bool() && c->as_bool()) {
          last_error_ = "watch cancelled by etcd";
          watch_conn_ = nullptr;
          co_return etcd::make_error_code(etcd::Errc::watch_canceled);
        }
        std::vector<etcd::Event> events;
        if (auto const* evs = o->if_contains("events"); evs && evs->is_array()) {
          for (auto const& e : evs->as_array()) {
            if (!e.is_object()) continue;
            etcd::Event ev;
            auto const* t = e.as_object().if_contains("type");
            ev.deleted = t && t->is_string() && t->as_string() == "DELETE";
            auto const* kv = e.as_object().if_contains("kv");
            if (kv && kv->is_object() && parse_kv(kv->as_object(), ev.kv))
              events.push_back(std::move(ev));
          }
        }
        if (!events.empty()) on_events(std::move(events));
      }
      pending.erase(0, start);
      if (rec) {
        watch_conn_ = nullptr;
        last_error_ = "watch: " + rec.message();
        co_return rec;
      }
    }
  }
  co_return ec;
}

}  // namespace gp::proxy
