// Typed configuration: what grayproxy.yaml says, validated, with defaults applied.
// Only config/ builds these; everything else reads them.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/version.hpp"

namespace gp::config {

using Duration = std::chrono::milliseconds;

// Where a value came from in the YAML file, for messages that point at it.
struct Mark {
  int line = 0;  // 1-based; 0 = not from a file (default or embedded)
  int column = 0;
  // Where a value is written is not part of the value: Cluster and Route compare equal when
  // only their place in the file moved (so a reload diff does not see them as changed).
  // Compare line and column explicitly to test positions.
  friend bool operator==(const Mark&, const Mark&) { return true; }
};

// host:port; host is an IPv4 literal, an IPv6 literal (written [::1]:80 in YAML) or a name.
struct Address {
  std::string host;
  std::uint16_t port = 0;
  std::string str() const;  // "127.0.0.1:80", "[::1]:80"
  friend bool operator==(const Address&, const Address&) = default;
};

// An extra certificate chosen by SNI (server_names: exact, or "*.suffix").
struct SniCertificate {
  std::vector<std::string> server_names;
  std::string cert_file;
  std::string key_file;
  friend bool operator==(const SniCertificate&, const SniCertificate&) = default;
};

struct ListenerTls {
  std::string cert_file;  // PEM, chain allowed: the default certificate
  std::string key_file;
  std::vector<SniCertificate> certificates;
  Duration handshake_timeout = std::chrono::seconds(10);
  friend bool operator==(const ListenerTls&, const ListenerTls&) = default;
};

struct Listener {
  std::string name;
  Address address;
  std::optional<ListenerTls> tls;
  friend bool operator==(const Listener&, const Listener&) = default;
};

struct UpstreamTls {
  std::string ca_file;  // empty: system trust store
  std::string sni;      // empty: the endpoint's host
  bool verify = true;
  std::string cert_file;  // client certificate (mTLS); both or neither
  std::string key_file;
  friend bool operator==(const UpstreamTls&, const UpstreamTls&) = default;
};

// Passive outlier detection of a cluster's endpoints (Envoy's outlier_detection). Failures:
// connect failures and timeouts, resets and timeouts before the response head, 502/503/504.
struct OutlierDetection {
  std::uint32_t consecutive_failures = 5;
  Duration ejection_time = std::chrono::seconds(30);       // x the endpoint's ejections in a row
  Duration max_ejection_time = std::chrono::seconds(300);  // default: max(300s, ejection_time)
  std::uint32_t max_ejection_percent = 50;                 // of the cluster's endpoints, 0-100
  friend bool operator==(const OutlierDetection&, const OutlierDetection&) = default;
};

// Per-cluster circuit breakers (Envoy's max_pending_requests / max_requests); 0 = unlimited.
struct ClusterLimits {
  std::uint32_t max_pending_requests = 0;  // waiting for a new upstream connection
  std::uint32_t max_active_requests = 0;   // in flight to the cluster, all workers
  friend bool operator==(const ClusterLimits&, const ClusterLimits&) = default;
};

struct Cluster {
  std::string name;
  std::vector<Address> endpoints;
  std::optional<UpstreamTls> tls;
  Mark mark;
  // Absent: only a refused or timed-out connection ejects, for 5 s (the behaviour before
  // outlier_detection existed).
  std::optional<OutlierDetection> outlier_detection;
  ClusterLimits limits;
  friend bool operator==(const Cluster&, const Cluster&) = default;
};

struct HeaderMatch {
  std::string name;   // lower-case
  std::string value;  // exact
  friend bool operator==(const HeaderMatch&, const HeaderMatch&) = default;
};

struct Match {
  std::string host;  // "" = any host; "shop.example.com" exact; "*.example.com" suffix
  std::string path_prefix = "/";
  std::optional<HeaderMatch> header;
  friend bool operator==(const Match&, const Match&) = default;
};

enum class KeySource : std::uint8_t { header, cookie };
enum class Fallback : std::uint8_t { cookie, client_ip, random };

struct HashOn {
  KeySource source = KeySource::header;
  std::string name;  // header names lower-case; cookie names as written
  friend bool operator==(const HashOn&, const HashOn&) = default;
};

struct Override {
  KeySource source = KeySource::header;
  std::string name;
  std::string value;
  Version to = Version::canary;
  friend bool operator==(const Override&, const Override&) = default;
};

struct Split {
  std::uint32_t weight_bp = 0;  // percent * 100, in [0, 10000]
  HashOn hash_on;
  std::string salt;                         // defaults to the route name
  Fallback fallback = Fallback::client_ip;  // cookie when hash_on is a cookie
  std::vector<Override> overrides;
  Duration cookie_ttl = std::chrono::hours(24 * 30);
  bool trust_forwarded_for = false;
  bool expose_version = false;
  // When no canary endpoint can be reached: answer the error, or serve the request from stable.
  bool fallback_to_stable = false;
  friend bool operator==(const Split&, const Split&) = default;
};

// How routing::RolloutController moves the canary weight (docs/analysis.md).
struct Rollout {
  // Ascending, in (0, 10000]; passing at the last step promotes (weight 10000) even when it is
  // below 100%. Written as `steps: [...]`, or generated from `step_weight` + `max_weight`
  // (max_weight defaults to 100) as Flagger does: step_weight, 2*step_weight, ... while below
  // max_weight, then max_weight itself; passing at max_weight promotes.
  std::vector<std::uint32_t> steps_bp;
  Duration interval = std::chrono::seconds(30);
  // Canary requests a step needs before it may pass (judging itself needs none: overwhelming
  // evidence fails at once).
  std::uint64_t min_requests = 50;
  double max_error_rate = 0.01;
  // The regression against stable that must be caught: canary's error rate / stable's.
  double max_error_rate_ratio = 2;
  std::optional<Duration> max_p99_latency;
  // The canary's latency against stable's, scaled: fail when the canary's latencies divided by
  // this are still stochastically slower than stable's (a rank test on the two latency
  // sketches, docs/analysis.md). Absent: not judged.
  std::optional<double> max_latency_ratio;
  std::uint32_t failure_limit = 2;
  std::uint32_t consecutive_successes = 1;
  // The canary against stable on the same windows (docs/analysis.md); `compare_to_stable:
  // {confidence: 0.999}` gives that test its own confidence.
  bool compare_to_stable = true;
  std::optional<double> compare_confidence;
  // 1 - the chance of failing a canary that is within the limits, over the whole rollout.
  double confidence = 0.995;
  // 1 - the chance of passing a step (from 25% up) with a canary at a limit.
  double power = 0.95;
  Duration start_delay{0};  // windows before this are not judged (warm-up); 0 = none
  // After every weight change, windows that end before this has passed only count for a breach
  // of max_error_rate (cold caches and new connections are not the canary's steady state);
  // absent: one interval.
  std::optional<Duration> step_warmup;
  // `mode: analyze`: judge and report (logs, /status, metrics) without moving the weight, to
  // trial a policy on live traffic; `mode: progressive` (default) moves it.
  bool analyze_only = false;
  friend bool operator==(const Rollout&, const Rollout&) = default;
};

// Conditions of Retries::on, a bit set.
enum RetryOn : std::uint8_t {
  kRetryConnectFailure = 1,  // refused, unreachable or timed-out connection: nothing was sent
  kRetryReset = 2,           // connection reset or closed before the response head
  kRetryTimeout = 4,         // no response head within timeouts.upstream_response
  kRetry502 = 8,
  kRetry503 = 16,
  kRetry504 = 32,
};

// A route's retry policy (Envoy's retry_policy). Requests that were sent (all conditions but
// connect-failure) are retried only for idempotent methods without a body; each retry goes to
// an endpoint not tried yet for the request when the cluster has one.
struct Retries {
  std::uint32_t attempts = 0;  // extra tries after the first
  std::uint8_t on = kRetryConnectFailure | kRetryReset;
  friend bool operator==(const Retries&, const Retries&) = default;
};

struct Route {
  std::string name;
  Match match;
  std::string stable;  // cluster name
  std::string canary;  // cluster name; "" = plain proxy route
  std::optional<Split> split;
  std::optional<Rollout> rollout;
  Mark mark;
  // Absent: a failed connection moves on to the cluster's next endpoint (each tried once),
  // nothing else is retried.
  std::optional<Retries> retries;
  friend bool operator==(const Route&, const Route&) = default;
};

struct Timeouts {
  Duration request_header = std::chrono::seconds(10);
  Duration idle = std::chrono::seconds(60);
  Duration upstream_connect = std::chrono::seconds(2);
  Duration upstream_response = std::chrono::seconds(30);
  Duration drain = std::chrono::seconds(20);
  friend bool operator==(const Timeouts&, const Timeouts&) = default;
};

struct Limits {
  std::uint32_t max_request_header_bytes = 61440;
  std::uint32_t max_response_header_bytes = 61440;
  std::uint32_t max_connections = 10000;
  std::uint64_t max_request_body_bytes = 0;  // 0 = unlimited (streamed)
  std::uint32_t max_idle_upstream_per_endpoint = 64;
  std::uint32_t max_request_line_bytes = 8192;  // 414 above (nginx's header buffer size)
  friend bool operator==(const Limits&, const Limits&) = default;
};

// HTTP rules of the proxy (docs/wire.md).
enum class Underscores : std::uint8_t { drop, reject, allow };
struct Http {
  // Request header names containing '_': dropped (nginx's default), rejected with 400, or
  // forwarded (Envoy's headers_with_underscores_action).
  Underscores headers_with_underscores = Underscores::drop;
  friend bool operator==(const Http&, const Http&) = default;
};

struct Admin {
  Address address{"127.0.0.1", 9901};
  std::string token_file;  // "" = writes are not authenticated
  friend bool operator==(const Admin&, const Admin&) = default;
};

struct AccessLog {
  std::string path;  // "-" = stdout
  std::string format = "json";
  friend bool operator==(const AccessLog&, const AccessLog&) = default;
};

// Fleet mode: several instances run one rollout together through etcd (README "Fleet mode").
struct Etcd {
  std::vector<Address> endpoints;                 // tried in order; the next on failure
  std::string prefix;                             // "/grayproxy/NAME": every key lives under it
  Duration lease_ttl = std::chrono::seconds(10);  // whole seconds, at least 2s
  std::optional<UpstreamTls> tls;                 // https to etcd: ca_file, cert_file, key_file
  friend bool operator==(const Etcd&, const Etcd&) = default;
};

struct Fleet {
  std::string instance;  // "" = hostname:admin_port (unique per fleet)
  Etcd etcd;
  friend bool operator==(const Fleet&, const Fleet&) = default;
};

struct Config {
  std::string source;    // file name (or "<demo>") used in messages
  unsigned workers = 0;  // 0 = auto (number of cores)
  std::string state_dir;
  Admin admin;
  Timeouts timeouts;
  Limits limits;
  Http http;
  std::optional<AccessLog> access_log;
  std::vector<Listener> listeners;
  std::vector<Cluster> clusters;
  std::vector<Route> routes;
  std::optional<Fleet> fleet;  // absent: single-instance mode

  const Cluster* find_cluster(const std::string& name) const;
};

// Every configuration problem: the message is "file:line:col: key.path: what was expected".
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parse and validate. Throw Error on the first problem found.
Config parse(const std::string& yaml_text, const std::string& source_name);
Config load_file(const std::string& path);

}  // namespace gp::config
