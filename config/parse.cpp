// The grayproxy.yaml schema: walks the YAML tree with detail::Reader, applies defaults and
// checks every value and cross-reference. The first problem found is thrown as Error.
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <limits>
#include <memory>
#include <sstream>
#include <system_error>

#include "config/address.hpp"
#include "config/config.hpp"
#include "config/percent.hpp"
#include "config/yaml_reader.hpp"

namespace gp::config {

namespace {

using detail::Map;
using detail::Reader;
using detail::Value;

// Records where each document starts; ignores everything else.
struct DocumentCounter : YAML::EventHandler {
  std::vector<YAML::Mark> starts;
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

constexpr std::uint64_t kU32Max = std::numeric_limits<std::uint32_t>::max();
constexpr std::uint64_t kU64Max = std::numeric_limits<std::uint64_t>::max();

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// RFC 9110 token characters (header names; RFC 6265 cookie names are tokens too).
bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

std::string header_name(const Reader& r, const Value& v) {
  const std::string s = r.string(v);
  if (!is_token(s)) r.fail_got(v, "expected a header name (letters, digits and !#$%&'*+-.^_`|~)");
  return lower(s);
}

std::string cookie_name(const Reader& r, const Value& v) {
  std::string s = r.string(v);
  if (!is_token(s)) r.fail_got(v, "expected a cookie name (letters, digits and !#$%&'*+-.^_`|~)");
  return s;
}

// "" = any host; "shop.example.com"; "*.example.com". Stored lower-case.
std::string match_host(const Reader& r, const Value& v) {
  std::string s = lower(r.string(v));
  if (s.empty()) return s;
  const std::string_view name = s.starts_with("*.") ? std::string_view(s).substr(2) : s;
  if (!is_host_name(name)) r.fail_got(v, "expected a host name, *.suffix, or \"\" for any host");
  return s;
}

std::string path_prefix(const Reader& r, const Value& v) {
  std::string s = r.string(v);
  if (!s.starts_with('/')) r.fail_got(v, "must start with '/'");
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '?' || c == '#')
      r.fail_got(v, "expected a path without spaces, control characters, '?' or '#'");
  }
  return s;
}

// {header: NAME} or {cookie: NAME}, exactly one, in a map that may have other keys.
void key_source(const Reader& r, const Map& m, KeySource& source, std::string& name) {
  const Value* h = m.find("header");
  const Value* c = m.find("cookie");
  if ((h != nullptr) == (c != nullptr))
    r.fail(
        m.mark(), m.path(),
        std::string("expected exactly one of header or cookie, got ") + (h ? "both" : "neither"));
  if (h) {
    source = KeySource::header;
    name = header_name(r, *h);
  } else {
    source = KeySource::cookie;
    name = cookie_name(r, *c);
  }
}

std::string line_ref(const Mark& m) {
  return "line " + std::to_string(m.line);
}

class Parser {
 public:
  explicit Parser(const Reader& r) : r_(r) {}

  Config parse(const Value& root) {
    const Map top = r_.map(root, {"workers", "state_dir", "admin", "timeouts", "limits", "http",
                                  "access_log", "listeners", "clusters", "routes", "fleet"});
    cfg_.source = r_.source();
    if (const Value* v = top.find("workers")) workers(*v);
    if (const Value* v = top.find("state_dir")) cfg_.state_dir = r_.string(*v);
    if (const Value* v = top.find("admin")) admin(*v);
    if (const Value* v = top.find("timeouts")) timeouts(*v);
    if (const Value* v = top.find("limits")) limits(*v);
    if (const Value* v = top.find("http")) http(*v);
    if (const Value* v = top.find("access_log")) access_log(*v);
    listeners(top.need("listeners"));
    clusters(top.need("clusters"));  // before routes, which refer to them
    routes(top.need("routes"));
    if (const Value* v = top.find("fleet")) fleet(*v);
    return std::move(cfg_);
  }

 private:
  void workers(const Value& v) {
    const char* expected = "expected auto or an integer between 1 and 1024";
    if (!v.node.IsScalar()) r_.fail_got(v, expected);
    const std::string& s = v.node.Scalar();
    if (s == "auto") {
      cfg_.workers = 0;
      return;
    }
    const std::size_t digits_from = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
    if (s.size() == digits_from ||
        s.find_first_not_of("0123456789", digits_from) != std::string::npos)
      r_.fail_got(v, expected);
    cfg_.workers = static_cast<unsigned>(r_.integer(v, 1, 1024));
  }

  void admin(const Value& v) {
    const Map m = r_.map(v, {"address", "token_file"});
    if (const Value* a = m.find("address")) {
      cfg_.admin.address = r_.address(*a);
      admin_address_mark_ = a->mark;
    }
    if (const Value* t = m.find("token_file")) cfg_.admin.token_file = r_.string(*t);
  }

  void timeouts(const Value& v) {
    const Map m =
        r_.map(v, {"request_header", "idle", "upstream_connect", "upstream_response", "drain"});
    Timeouts& t = cfg_.timeouts;
    if (const Value* x = m.find("request_header")) t.request_header = r_.positive_duration(*x);
    if (const Value* x = m.find("idle")) t.idle = r_.positive_duration(*x);
    if (const Value* x = m.find("upstream_connect")) t.upstream_connect = r_.positive_duration(*x);
    if (const Value* x = m.find("upstream_response"))
      t.upstream_response = r_.positive_duration(*x);
    if (const Value* x = m.find("drain")) t.drain = r_.positive_duration(*x);
  }

  void limits(const Value& v) {
    const Map m = r_.map(
        v, {"max_request_header_bytes", "max_request_line_bytes", "max_response_header_bytes",
            "max_connections", "max_request_body_bytes", "max_idle_upstream_per_endpoint"});
    Limits& l = cfg_.limits;
    auto u32 = [&](const Value& x, std::uint64_t min, std::uint64_t max) {
      return static_cast<std::uint32_t>(r_.integer(x, min, max));
    };
    if (const Value* x = m.find("max_request_header_bytes"))
      l.max_request_header_bytes = u32(*x, 1024, 1048576);
    if (const Value* x = m.find("max_request_line_bytes"))
      l.max_request_line_bytes = u32(*x, 256, 1048576);
    if (const Value* x = m.find("max_response_header_bytes"))
      l.max_response_header_bytes = u32(*x, 1024, 1048576);
    if (const Value* x = m.find("max_connections")) l.max_connections = u32(*x, 1, kU32Max);
    if (const Value* x = m.find("max_request_body_bytes"))
      l.max_request_body_bytes = r_.integer(*x, 0, kU64Max);
    if (const Value* x = m.find("max_idle_upstream_per_endpoint"))
      l.max_idle_upstream_per_endpoint = u32(*x, 0, 100000);
  }

  void http(const Value& v) {
    const Map m = r_.map(v, {"headers_with_underscores"});
    if (const Value* x = m.find("headers_with_underscores"))
      cfg_.http.headers_with_underscores =
          static_cast<Underscores>(r_.choice(*x, {"drop", "reject", "allow"}));
  }

  void access_log(const Value& v) {
    const Map m = r_.map(v, {"path", "format"});
    AccessLog log;
    log.path = r_.nonempty_string(m.need("path"));
    if (const Value* f = m.find("format"))
      log.format = r_.choice(*f, {"json", "text"}) ? "text" : "json";
    cfg_.access_log = std::move(log);
  }

  void listeners(const Value& v) {
    const auto items = r_.list(v);
    if (items.empty()) r_.fail_got(v, "expected at least one listener");
    std::vector<Mark> name_marks;
    std::vector<Mark> address_marks;
    for (const Value& item : items) {
      const Map m = r_.map(item, {"name", "address", "tls"});
      Listener l;
      const Value& name = m.need("name");
      l.name = r_.name(name);
      const Value& address = m.need("address");
      l.address = r_.address(address);
      if (const Value* t = m.find("tls")) {
        const Map tm = r_.map(*t, {"cert_file", "key_file", "certificates", "handshake_timeout"});
        ListenerTls tls;
        tls.cert_file = r_.nonempty_string(tm.need("cert_file"));
        tls.key_file = r_.nonempty_string(tm.need("key_file"));
        if (const Value* x = tm.find("handshake_timeout"))
          tls.handshake_timeout = r_.positive_duration(*x);
        if (const Value* x = tm.find("certificates")) {
          for (const Value& c : r_.list(*x)) {
            const Map cm = r_.map(c, {"server_names", "cert_file", "key_file"});
            SniCertificate sni;
            const Value& names = cm.need("server_names");
            for (const Value& n : r_.list(names)) {
              std::string name = lower(r_.nonempty_string(n));
              const std::string_view bare =
                  name.starts_with("*.") ? std::string_view(name).substr(2) : name;
              if (!is_host_name(bare)) r_.fail_got(n, "expected a host name or *.suffix");
              sni.server_names.push_back(std::move(name));
            }
            if (sni.server_names.empty()) r_.fail_got(names, "expected at least one server name");
            sni.cert_file = r_.nonempty_string(cm.need("cert_file"));
            sni.key_file = r_.nonempty_string(cm.need("key_file"));
            tls.certificates.push_back(std::move(sni));
          }
        }
        l.tls = std::move(tls);
      }
      for (std::size_t i = 0; i < cfg_.listeners.size(); ++i) {
        if (cfg_.listeners[i].name == l.name)
          r_.fail(name.mark, name.path,
                  "duplicate listener name " + detail::quote(l.name) + " (first at " +
                      line_ref(name_marks[i]) + ")");
        if (cfg_.listeners[i].address == l.address)
          r_.fail(address.mark, address.path,
                  "duplicate listener address " + detail::quote(l.address.str()) + " (first at " +
                      line_ref(address_marks[i]) + ")");
      }
      if (l.address == cfg_.admin.address) {
        std::string where = admin_address_mark_.line > 0
                                ? " (at " + line_ref(admin_address_mark_) + ")"
                                : " (the default admin address)";
        r_.fail_got(address, "must differ from admin.address" + where);
      }
      name_marks.push_back(name.mark);
      address_marks.push_back(address.mark);
      cfg_.listeners.push_back(std::move(l));
    }
  }

  void clusters(const Value& v) {
    const auto items = r_.list(v);
    if (items.empty()) r_.fail_got(v, "expected at least one cluster");
    std::vector<Mark> name_marks;
    for (const Value& item : items) {
      const Map m = r_.map(item, {"name", "endpoints", "tls", "outlier_detection", "limits"});
      Cluster c;
      c.mark = m.mark();
      const Value& name = m.need("name");
      c.name = r_.name(name);
      for (std::size_t i = 0; i < cfg_.clusters.size(); ++i)
        if (cfg_.clusters[i].name == c.name)
          r_.fail(name.mark, name.path,
                  "duplicate cluster name " + detail::quote(c.name) + " (first at " +
                      line_ref(name_marks[i]) + ")");
      const Value& endpoints = m.need("endpoints");
      const auto eps = r_.list(endpoints);
      if (eps.empty()) r_.fail_got(endpoints, "expected at least one endpoint");
      for (const Value& e : eps) {
        Address a = r_.address(e);
        for (const Address& seen : c.endpoints)
          if (seen == a) r_.fail(e.mark, e.path, "duplicate endpoint " + detail::quote(a.str()));
        c.endpoints.push_back(std::move(a));
      }
      if (const Value* t = m.find("tls")) {
        const Map tm = r_.map(*t, {"ca_file", "sni", "verify", "cert_file", "key_file"});
        UpstreamTls tls;
        if (const Value* x = tm.find("ca_file")) tls.ca_file = r_.string(*x);
        if (const Value* x = tm.find("sni")) {
          tls.sni = lower(r_.string(*x));
          if (!tls.sni.empty() && !is_host_name(tls.sni))
            r_.fail_got(*x, "expected a host name, or \"\" for the endpoint's host");
        }
        if (const Value* x = tm.find("verify")) tls.verify = r_.boolean(*x);
        client_certificate(tm, tls);
        c.tls = std::move(tls);
      }
      if (const Value* x = m.find("outlier_detection")) c.outlier_detection = outlier_detection(*x);
      if (const Value* x = m.find("limits")) c.limits = cluster_limits(*x);
      name_marks.push_back(name.mark);
      cfg_.clusters.push_back(std::move(c));
    }
  }

  void fleet(const Value& v) {
    const Map m = r_.map(v, {"instance", "etcd"});
    Fleet f;
    if (const Value* x = m.find("instance")) {
      f.instance = r_.nonempty_string(*x);
      for (char c : f.instance)
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '/')
          r_.fail_got(*x, "expected an instance name without spaces, control characters or '/'");
    }
    const Map em = r_.map(m.need("etcd"), {"endpoints", "prefix", "lease_ttl", "tls"});
    const Value& endpoints = em.need("endpoints");
    const auto eps = r_.list(endpoints);
    if (eps.empty()) r_.fail_got(endpoints, "expected at least one etcd endpoint");
    for (const Value& e : eps) f.etcd.endpoints.push_back(r_.address(e));
    const Value& prefix = em.need("prefix");
    f.etcd.prefix = r_.nonempty_string(prefix);
    if (!f.etcd.prefix.starts_with('/') || f.etcd.prefix.ends_with('/') || f.etcd.prefix.size() < 2)
      r_.fail_got(prefix,
                  "expected a key prefix like /grayproxy/NAME (leading '/', none at the end)");
    if (const Value* x = em.find("lease_ttl")) {
      f.etcd.lease_ttl = r_.positive_duration(*x);
      // etcd leases are granted in whole seconds, and its minimum TTL is about 2s.
      if (f.etcd.lease_ttl.count() % 1000 != 0 || f.etcd.lease_ttl < std::chrono::seconds(2))
        r_.fail_got(*x, "expected whole seconds, at least 2s");
    }
    if (const Value* t = em.find("tls")) {
      const Map tm = r_.map(*t, {"ca_file", "cert_file", "key_file"});
      UpstreamTls tls;
      if (const Value* x = tm.find("ca_file")) tls.ca_file = r_.string(*x);
      client_certificate(tm, tls);
      f.etcd.tls = std::move(tls);
    }
    cfg_.fleet = std::move(f);
  }

  // cert_file + key_file of a TLS client (an upstream's or etcd's): both or neither.
  void client_certificate(const Map& tm, UpstreamTls& tls) {
    const Value* cert = tm.find("cert_file");
    const Value* key = tm.find("key_file");
    if (cert) tls.cert_file = r_.nonempty_string(*cert);
    if (key) tls.key_file = r_.nonempty_string(*key);
    if (cert && !key) r_.fail_got(*cert, "needs key_file as well (client certificate)");
    if (key && !cert) r_.fail_got(*key, "needs cert_file as well (client certificate)");
  }

  OutlierDetection outlier_detection(const Value& v) {
    const Map m = r_.map(
        v, {"consecutive_failures", "ejection_time", "max_ejection_time", "max_ejection_percent"});
    OutlierDetection o;
    if (const Value* x = m.find("consecutive_failures"))
      o.consecutive_failures = static_cast<std::uint32_t>(r_.integer(*x, 1, 1000000));
    if (const Value* x = m.find("ejection_time")) o.ejection_time = r_.positive_duration(*x);
    // Envoy's default: max(300s, ejection_time).
    o.max_ejection_time = std::max<Duration>(std::chrono::seconds(300), o.ejection_time);
    if (const Value* x = m.find("max_ejection_time")) {
      o.max_ejection_time = r_.positive_duration(*x);
      if (o.max_ejection_time < o.ejection_time) r_.fail_got(*x, "must be at least ejection_time");
    }
    if (const Value* x = m.find("max_ejection_percent"))
      o.max_ejection_percent = static_cast<std::uint32_t>(r_.integer(*x, 0, 100));
    return o;
  }

  ClusterLimits cluster_limits(const Value& v) {
    const Map m = r_.map(v, {"max_pending_requests", "max_active_requests"});
    ClusterLimits l;
    // 0 is "unlimited", the default; a limit written is at least 1.
    if (const Value* x = m.find("max_pending_requests"))
      l.max_pending_requests = static_cast<std::uint32_t>(r_.integer(*x, 1, kU32Max));
    if (const Value* x = m.find("max_active_requests"))
      l.max_active_requests = static_cast<std::uint32_t>(r_.integer(*x, 1, kU32Max));
    return l;
  }

  // {attempts: N, on: [connect-failure, reset, timeout, 502, 503, 504]}
  Retries retries(const Value& v) {
    const Map m = r_.map(v, {"attempts", "on"});
    Retries out;
    if (const Value* x = m.find("attempts"))
      out.attempts = static_cast<std::uint32_t>(r_.integer(*x, 0, 10));
    if (const Value* x = m.find("on")) {
      const auto items = r_.list(*x);
      if (items.empty()) r_.fail_got(*x, "expected at least one retry condition");
      constexpr std::uint8_t kBits[] = {
          kRetryConnectFailure, kRetryReset, kRetryTimeout, kRetry502, kRetry503, kRetry504};
      out.on = 0;
      for (const Value& item : items) {
        const std::uint8_t bit =
            kBits[r_.choice(item, {"connect-failure", "reset", "timeout", "502", "503", "504"})];
        if (out.on & bit) r_.fail_got(item, "duplicate retry condition");
        out.on |= bit;
      }
    }
    return out;
  }

  std::string cluster_ref(const Value& v) {
    std::string name = r_.nonempty_string(v);
    if (!cfg_.find_cluster(name)) r_.fail(v.mark, v.path, "unknown cluster " + detail::quote(name));
    return name;
  }

  void routes(const Value& v) {
    const auto items = r_.list(v);
    if (items.empty()) r_.fail_got(v, "expected at least one route");
    std::vector<Mark> name_marks;
    std::vector<Mark> match_marks;
    for (const Value& item : items) {
      const Map m =
          r_.map(item, {"name", "match", "stable", "canary", "split", "rollout", "retries"});
      Route route;
      route.mark = m.mark();
      const Value& name = m.need("name");
      route.name = r_.name(name);
      // Requests that match no route are counted under route="none".
      if (route.name == "none")
        r_.fail(name.mark, name.path, "\"none\" is reserved for requests that match no route");
      for (std::size_t i = 0; i < cfg_.routes.size(); ++i)
        if (cfg_.routes[i].name == route.name)
          r_.fail(name.mark, name.path,
                  "duplicate route name " + detail::quote(route.name) + " (first at " +
                      line_ref(name_marks[i]) + ")");

      Mark match_mark = route.mark;
      std::string match_path = m.path() + ".match";
      if (const Value* x = m.find("match")) {
        route.match = match(*x);
        match_mark = x->mark;
      }
      for (std::size_t i = 0; i < cfg_.routes.size(); ++i)
        if (cfg_.routes[i].match == route.match)
          r_.fail(match_mark, match_path,
                  "same host, path_prefix and header as route " +
                      detail::quote(cfg_.routes[i].name) + " (" + line_ref(match_marks[i]) + ")");

      route.stable = cluster_ref(m.need("stable"));
      if (const Value* x = m.find("canary")) {
        route.canary = cluster_ref(*x);
        if (route.canary == route.stable) r_.fail_got(*x, "must differ from stable");
      }
      const std::string needs_canary = "needs a canary cluster (set " + m.path() + ".canary)";
      if (const Value* x = m.find("split")) {
        if (route.canary.empty()) r_.fail(x->key_mark, x->path, needs_canary);
        route.split = split(*x, route.name);
      }
      if (const Value* x = m.find("rollout")) {
        if (route.canary.empty()) r_.fail(x->key_mark, x->path, needs_canary);
        if (!route.split)
          r_.fail(x->key_mark, x->path,
                  "needs a split to move (set " + m.path() + ".split with hash_on)");
        route.rollout = rollout(*x);
      }
      if (const Value* x = m.find("retries")) route.retries = retries(*x);
      name_marks.push_back(name.mark);
      match_marks.push_back(match_mark);
      cfg_.routes.push_back(std::move(route));
    }
  }

  Match match(const Value& v) {
    const Map m = r_.map(v, {"host", "path_prefix", "header"});
    Match out;
    if (const Value* x = m.find("host")) out.host = match_host(r_, *x);
    if (const Value* x = m.find("path_prefix")) out.path_prefix = path_prefix(r_, *x);
    if (const Value* x = m.find("header")) {
      const Map h = r_.map(*x, {"name", "value"});
      out.header = HeaderMatch{header_name(r_, h.need("name")), r_.string(h.need("value"))};
    }
    return out;
  }

  Split split(const Value& v, const std::string& route_name) {
    const Map m = r_.map(v, {"weight", "hash_on", "salt", "fallback", "overrides", "cookie_ttl",
                             "trust_forwarded_for", "expose_version", "canary_unavailable"});
    Split s;
    if (const Value* x = m.find("weight")) s.weight_bp = r_.percent_bp(*x);
    const Map hash_on = r_.map(m.need("hash_on"), {"header", "cookie"});
    key_source(r_, hash_on, s.hash_on.source, s.hash_on.name);
    s.salt = route_name;
    if (const Value* x = m.find("salt")) s.salt = r_.nonempty_string(*x);
    const bool cookie_key = s.hash_on.source == KeySource::cookie;
    s.fallback = cookie_key ? Fallback::cookie : Fallback::client_ip;
    if (const Value* x = m.find("fallback")) {
      constexpr Fallback kFallbacks[] = {Fallback::cookie, Fallback::client_ip, Fallback::random};
      s.fallback = kFallbacks[r_.choice(*x, {"cookie", "client_ip", "random"})];
      if (s.fallback == Fallback::cookie && !cookie_key)
        r_.fail_got(*x, "must be client_ip or random when hash_on is a header");
    }
    if (const Value* x = m.find("overrides")) {
      std::vector<Mark> marks;
      for (const Value& item : r_.list(*x)) {
        const Map om = r_.map(item, {"header", "cookie", "value", "to"});
        Override o;
        key_source(r_, om, o.source, o.name);
        o.value = r_.string(om.need("value"));
        o.to = r_.choice(om.need("to"), {"stable", "canary"}) ? Version::canary : Version::stable;
        for (std::size_t i = 0; i < s.overrides.size(); ++i) {
          const Override& seen = s.overrides[i];
          if (seen.source == o.source && seen.name == o.name && seen.value == o.value)
            r_.fail(om.mark(), om.path(),
                    std::string("duplicate override for ") +
                        (o.source == KeySource::header ? "header " : "cookie ") + o.name + " = " +
                        detail::quote(o.value) + " (first at " + line_ref(marks[i]) + ")");
        }
        marks.push_back(om.mark());
        s.overrides.push_back(std::move(o));
      }
    }
    if (const Value* x = m.find("cookie_ttl")) s.cookie_ttl = r_.positive_duration(*x);
    if (const Value* x = m.find("trust_forwarded_for")) s.trust_forwarded_for = r_.boolean(*x);
    if (const Value* x = m.find("expose_version")) s.expose_version = r_.boolean(*x);
    if (const Value* x = m.find("canary_unavailable"))
      s.fallback_to_stable = r_.choice(*x, {"fail", "fallback_to_stable"}) == 1;
    return s;
  }

  Rollout rollout(const Value& v) {
    const Map m =
        r_.map(v, {"steps", "step_weight", "max_weight", "start_delay", "interval", "min_requests",
                   "max_error_rate", "max_error_rate_ratio", "max_error_rate_increase",
                   "max_p99_latency", "failure_limit", "consecutive_successes", "compare_to_stable",
                   "confidence", "power", "mode", "max_latency_ratio", "step_warmup"});
    Rollout out;
    steps(m, out);
    if (const Value* x = m.find("start_delay")) out.start_delay = r_.duration(*x);
    if (const Value* x = m.find("interval")) out.interval = r_.positive_duration(*x);
    if (const Value* x = m.find("min_requests")) out.min_requests = r_.integer(*x, 0, kU64Max);
    if (const Value* x = m.find("max_error_rate")) out.max_error_rate = r_.number(*x, 0, 1);
    if (const Value* x = m.find("max_error_rate_ratio"))
      out.max_error_rate_ratio = r_.number(*x, 1.01, 1000);
    if (const Value* x = m.find("max_error_rate_increase"))
      r_.fail(x->key_mark, x->path,
              "replaced by max_error_rate_ratio: the canary is compared with stable as a ratio "
              "of error rates on the same windows (docs/analysis.md)");
    if (const Value* x = m.find("power")) out.power = r_.number(*x, 0.5, 0.9999);
    if (const Value* x = m.find("mode"))
      out.analyze_only = r_.choice(*x, {"progressive", "analyze"}) == 1;
    if (const Value* x = m.find("max_p99_latency")) out.max_p99_latency = r_.positive_duration(*x);
    if (const Value* x = m.find("max_latency_ratio"))
      out.max_latency_ratio = r_.number(*x, 1.01, 1000);
    if (const Value* x = m.find("step_warmup")) out.step_warmup = r_.duration(*x);
    if (const Value* x = m.find("failure_limit"))
      out.failure_limit = static_cast<std::uint32_t>(r_.integer(*x, 1, kU32Max));
    if (const Value* x = m.find("consecutive_successes"))
      out.consecutive_successes = static_cast<std::uint32_t>(r_.integer(*x, 1, kU32Max));
    compare_to_stable(m, out);
    return out;
  }

  // `steps: [...]`, or `step_weight` (+ `max_weight`, default 100) expanded as Flagger does.
  void steps(const Map& m, Rollout& out) {
    const Value* step_weight = m.find("step_weight");
    const Value* max_weight = m.find("max_weight");
    if (max_weight && !step_weight)
      r_.fail(max_weight->key_mark, max_weight->path,
              "only goes with step_weight (not with steps)");
    if (step_weight) {
      if (const Value* s = m.find("steps"))
        r_.fail(step_weight->key_mark, step_weight->path,
                "expected exactly one of steps or step_weight, got both (steps at " +
                    line_ref(s->key_mark) + ")");
      const std::uint32_t step = r_.percent_bp(*step_weight);
      if (step == 0) r_.fail_got(*step_weight, "must be greater than 0");
      std::uint32_t max = 10000;
      if (max_weight) {
        max = r_.percent_bp(*max_weight);
        if (max < step)
          r_.fail_got(*max_weight,
                      "must be at least step_weight (" + format_percent_bp(step) + ")");
      }
      for (std::uint32_t w = step; w < max; w += step) out.steps_bp.push_back(w);
      out.steps_bp.push_back(max);
      return;
    }
    const Value& steps = m.need("steps");  // neither given: steps is the usual spelling
    const auto items = r_.list(steps);
    if (items.empty()) r_.fail_got(steps, "expected at least one step");
    for (const Value& item : items) {
      const std::uint32_t bp = r_.percent_bp(item);
      if (bp == 0) r_.fail_got(item, "must be greater than 0");
      if (!out.steps_bp.empty() && bp <= out.steps_bp.back())
        r_.fail_got(item, "must be greater than the previous step (" +
                              format_percent_bp(out.steps_bp.back()) + ")");
      out.steps_bp.push_back(bp);
    }
  }

  // compare_to_stable: true | false | {confidence: N}; confidence.
  void compare_to_stable(const Map& m, Rollout& out) {
    if (const Value* x = m.find("confidence")) out.confidence = r_.number(*x, 0.5, 0.9999);
    const Value* compare = m.find("compare_to_stable");
    if (compare && compare->node.IsMap()) {
      const Map cm = r_.map(*compare, {"confidence"});
      out.compare_to_stable = true;
      if (const Value* c = cm.find("confidence"))
        out.compare_confidence = r_.number(*c, 0.5, 0.9999);
    } else if (compare) {
      const char* expected = "expected true, false or a map like {confidence: 0.99}";
      if (!compare->node.IsScalar()) r_.fail_got(*compare, expected);
      try {
        out.compare_to_stable = r_.boolean(*compare);
      } catch (const Error&) {
        r_.fail_got(*compare, expected);
      }
    }
  }

  const Reader& r_;
  Config cfg_;
  Mark admin_address_mark_;  // line 0 while admin.address is the default
};

}  // namespace

Config parse(const std::string& yaml_text, const std::string& source_name) {
  const Reader r(source_name);
  // yaml-cpp 0.7's LoadAll can loop forever adding empty documents on input like ",]"
  // (yaml-cpp#1040): count at most two documents with the event parser, then load one.
  YAML::Node doc;
  try {
    std::istringstream in(yaml_text);
    YAML::Parser parser(in);
    DocumentCounter counter;
    while (counter.starts.size() < 2 && parser.HandleNextDocument(counter)) {
    }
    if (counter.starts.empty())
      r.fail(Mark{1, 1}, "",
             "expected a map with listeners, clusters and routes, got an empty file");
    if (counter.starts.size() > 1) {
      const YAML::Mark& m = counter.starts[1];
      r.fail(Mark{m.line + 1, m.column + 1}, "", "expected a single YAML document, got 2");
    }
    doc = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    const Mark at = e.mark.is_null() ? Mark{1, 1} : Mark{e.mark.line + 1, e.mark.column + 1};
    r.fail(at, "", "invalid YAML: " + e.msg);
  } catch (const YAML::Exception& e) {
    r.fail(Mark{1, 1}, "", std::string("invalid YAML: ") + e.what());
  }
  std::vector<YAML::Node> docs{doc};
  const Value root{docs[0], "", detail::mark_of(docs[0]), detail::mark_of(docs[0])};
  return Parser(r).parse(root);
}

Config load_file(const std::string& path) {
  auto cannot_read = [&](int err) {
    return Error(path +
                 ": cannot read: " + std::error_code(err, std::generic_category()).message());
  };
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw cannot_read(errno);
  std::string text;
  char buf[65536];
  while (true) {
    const std::size_t n = std::fread(buf, 1, sizeof buf, f.get());
    text.append(buf, n);
    if (n < sizeof buf) break;
  }
  if (std::ferror(f.get())) throw cannot_read(errno);
  return parse(text, path);
}

}  // namespace gp::config
