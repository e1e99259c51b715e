// Typed configuration: what grayproxy.yaml says, validated, with defaults applied.
// Only config/ builds these; everything else reads them.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

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

struct Cluster {
  std::string name;
  std::vector<Address> endpoints;
  std::optional<UpstreamTls> tls;
  Mark mark;
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

enum class Version : std::uint8_t { stable = 0, canary = 1 };
const char* to_string(Version v);

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
  friend bool operator==(const Split&, const Split&) = default;
};

// How routing::RolloutController moves the canary weight (DESIGN.md "Rollout controller").
struct Rollout {
  // Ascending, in (0, 10000]; passing at the last step promotes (weight 10000) even when it is
  // below 100%. Written as `steps: [...]`, or generated from `step_weight` + `max_weight`
  // (max_weight defaults to 100) as Flagger does: step_weight, 2*step_weight, ... while below
  // max_weight, then max_weight itself; passing at max_weight promotes.
  std::vector<std::uint32_t> steps_bp;
  Duration interval = std::chrono::seconds(30);
  std::uint64_t min_requests = 50;
  double max_error_rate = 0.01;
  std::optional<Duration> max_p99_latency;
  std::uint32_t failure_limit = 2;
  std::uint32_t consecutive_successes = 1;
  // `compare_to_stable: true` or `compare_to_stable: {confidence: 0.99}` (which sets
  // `confidence`); setting max_error_rate_increase turns it on too.
  bool compare_to_stable = false;
  // Fail when the canary's error rate exceeds stable's by more than this (absolute, e.g. 0.005
  // = half a percentage point) with `confidence`; unset = 0 (any significant increase fails).
  std::optional<double> max_error_rate_increase;
  double confidence = 0.95;  // for the error-rate bounds and the comparison with stable
  Duration start_delay{0};   // windows before this are not judged (warm-up); 0 = none
  friend bool operator==(const Rollout&, const Rollout&) = default;
};

struct Route {
  std::string name;
  Match match;
  std::string stable;  // cluster name
  std::string canary;  // cluster name; "" = plain proxy route
  std::optional<Split> split;
  std::optional<Rollout> rollout;
  Mark mark;
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
  friend bool operator==(const Limits&, const Limits&) = default;
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

struct Config {
  std::string source;    // file name (or "<demo>") used in messages
  unsigned workers = 0;  // 0 = auto (number of cores)
  std::string state_dir;
  Admin admin;
  Timeouts timeouts;
  Limits limits;
  std::optional<AccessLog> access_log;
  std::vector<Listener> listeners;
  std::vector<Cluster> clusters;
  std::vector<Route> routes;

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
