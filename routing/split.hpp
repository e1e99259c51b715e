// The stable/canary decision for one request (docs/design.md "Cohort hashing").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http/fields.hpp>

#include "config/config.hpp"
#include "routing/random_source.hpp"

namespace gp::routing {

struct SplitInput {
  const boost::beast::http::fields& headers;
  std::string_view client_ip;  // downstream peer address, textual
};

// Where the cohort key came from; logged and counted so operators can see how sticky traffic is.
enum class KeyOrigin : std::uint8_t {
  override_rule,
  header,
  cookie,
  fallback_cookie,  // a fresh id was generated for this request; the caller sends Set-Cookie
  client_ip,
  forwarded_for,
  random,
};
const char* to_string(KeyOrigin o);

struct Decision {
  config::Version version;
  KeyOrigin origin;
  std::uint32_t bucket;  // kBuckets (10000) when no bucket applies (override)
};

// Built once per route per snapshot; immutable afterwards, so workers share it freely.
class Splitter {
 public:
  // The salt defaults to the route name when split.salt is empty.
  explicit Splitter(const config::Split& split, std::string_view route_name);

  // Rules, in order:
  //  1. overrides in config order (header: first value, OWS-trimmed, equals exactly;
  //     cookie: value equals exactly) -> their version, bucket 10000;
  //  2. the hash_on key (header: first value, OWS-trimmed; cookie); empty counts as absent;
  //  3. the fallback: cookie -> a cookie of the same name sent earlier, else a fresh random
  //     id written to new_cookie_id and hashed for this very request; client_ip -> with
  //     trust_forwarded_for the last X-Forwarded-For entry, else client_ip; random -> a
  //     random bucket. An empty client address also falls back to random.
  // new_cookie_id is cleared on entry and non-empty only when the caller must send Set-Cookie.
  // The key is a view into the request: nothing allocates except a fresh cookie id.
  [[nodiscard]] Decision decide(const SplitInput& in, std::uint32_t weight_bp,
                                std::string& new_cookie_id, RandomSource& rng) const;

  // "NAME=ID; Path=/; Max-Age=TTLSECONDS; HttpOnly; SameSite=Lax"
  std::string set_cookie_value(std::string_view id) const;

  std::uint64_t seed() const { return seed_; }
  const std::string& cookie_name() const { return cookie_name_; }

 private:
  struct OverrideRule {
    config::KeySource source;
    std::string name;  // header names lower-cased
    std::string value;
    config::Version to;
  };

  std::uint64_t seed_;
  config::KeySource key_source_;
  std::string key_name_;  // header names lower-cased
  config::Fallback fallback_;
  // Name of the fallback cookie: the hash_on name (the design's `Set-Cookie: NAME=ID`). With a
  // header key this is the header's name, looked up as a cookie so the fallback stays sticky.
  std::string cookie_name_;
  std::vector<OverrideRule> overrides_;
  std::int64_t cookie_ttl_seconds_;
  bool trust_forwarded_for_;
};

}  // namespace gp::routing
