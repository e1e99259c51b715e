// A client of etcd's v3 JSON gateway (etcd 3.4 serves POST /v3/...), spoken over HTTP/1.1 (or
// HTTPS) with Beast on the caller's io_context. Keys and values are base64 on the wire, int64
// fields JSON strings. Every call has a deadline and fails over to the next endpoint on a
// connection error; results are error_codes, never exceptions. Not thread-safe: use it from
// the thread that runs its executor.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "proxy/asio_types.hpp"

namespace gp::proxy {

namespace etcd {

// Failures that are not socket errors.
enum class Errc {
  http_status = 1,  // etcd answered an error (message in last_error())
  not_found,        // gRPC NotFound: e.g. an expired lease
  bad_response,     // not the JSON expected
  compacted,        // a watch's start revision was compacted away
  watch_canceled,   // etcd cancelled the watch
  unavailable,      // 503 from every endpoint (no etcd leader)
};
const boost::system::error_category& category();
boost::system::error_code make_error_code(Errc e);

struct KeyValue {
  std::string key;
  std::string value;
  std::int64_t create_revision = 0;
  std::int64_t mod_revision = 0;
  std::int64_t lease = 0;
};

struct Range {
  std::int64_t revision = 0;  // the store's revision when it was read
  std::vector<KeyValue> kvs;
};

struct Compare {
  enum class Target { create, mod, value, lease } target;
  std::string key;
  std::int64_t number = 0;  // create/mod revision or lease id
  std::string value;        // Target::value
};

struct Put {
  std::string key;
  std::string value;
  std::int64_t lease = 0;  // 0: none
};

// When every compare holds, applies `success`; otherwise reads `failure_reads`.
struct TxnRequest {
  std::vector<Compare> compares;
  std::vector<Put> success;
  std::vector<std::string> failure_reads;
};

struct TxnResult {
  bool succeeded = false;
  std::int64_t revision = 0;
  std::vector<Range> reads;  // the failure branch's reads, in order
};

struct Event {
  bool deleted = false;
  KeyValue kv;  // key and mod_revision only when deleted
};

// "a" .. "b": the range_end that selects every key starting with `prefix`.
std::string prefix_end(std::string prefix);

}  // namespace etcd

class EtcdClient {
 public:
  struct Options {
    std::vector<config::Address> endpoints;
    std::shared_ptr<boost::asio::ssl::context> tls;  // null: plain HTTP
    std::chrono::milliseconds timeout{2000};         // per attempt (connect + exchange)
  };
  EtcdClient(Executor ex, Options options);
  ~EtcdClient();

  // Grants a lease; returns its id.
  Task<std::pair<boost::system::error_code, std::int64_t>> lease_grant(std::int64_t ttl_seconds);
  // Refreshes a lease; returns its remaining TTL, 0 when it no longer exists.
  Task<std::pair<boost::system::error_code, std::int64_t>> lease_keepalive(std::int64_t id);
  Task<boost::system::error_code> lease_revoke(std::int64_t id);
  // One key, or every key under `key` when prefix is set.
  Task<std::pair<boost::system::error_code, etcd::Range>> range(std::string key, bool prefix);
  Task<boost::system::error_code> put(etcd::Put p);
  Task<std::pair<boost::system::error_code, etcd::TxnResult>> txn(etcd::TxnRequest request);

  // Streams the changes of keys under `prefix` from `start_revision` on its own connection,
  // calling on_events for each batch, until the stream fails or cancel_watch() is called.
  // Returns why it ended (operation_aborted after cancel_watch()).
  using EventHandler = std::function<void(std::vector<etcd::Event>)>;
  Task<boost::system::error_code> watch(std::string prefix, std::int64_t start_revision,
                                        EventHandler on_events);
  void cancel_watch();

  // The message of the last failure, for logs.
  const std::string& last_error() const { return last_error_; }
  std::string endpoint() const;  // the endpoint in use

 private:
  struct Conn;
  Task<std::pair<boost::system::error_code, std::unique_ptr<Conn>>> connect(std::size_t endpoint);
  Task<std::pair<boost::system::error_code, boost::json::value>> call(std::string path,
                                                                      std::string body);

  Executor ex_;
  Options options_;
  std::size_t current_ = 0;
  std::vector<std::unique_ptr<Conn>> idle_;  // keep-alive connections to options_.endpoints
  Conn* watch_conn_ = nullptr;               // the open watch stream, for cancel_watch()
  std::string last_error_;
};

}  // namespace gp::proxy

template <>
struct boost::system::is_error_code_enum<gp::proxy::etcd::Errc> : std::true_type {};
