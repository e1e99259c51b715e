#include "routing/split.hpp"

#include <algorithm>
#include <optional>

#include "routing/cohort.hpp"
#include "routing/cookie.hpp"
#include "routing/header_values.hpp"

namespace gp::routing {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; });
  return out;
}

std::optional<std::string_view> read(const boost::beast::http::fields& headers,
                                     config::KeySource source, std::string_view name) {
  return source == config::KeySource::header ? first_value(headers, name)
                                             : find_cookie(headers, name);
}

// 128 random bits as 32 lowercase hex digits: unguessable enough to be unique per client.
void fresh_id(std::string& out, RandomSource& rng) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.resize(32);
  for (int half = 0; half < 2; ++half) {
    std::uint64_t bits = rng.next();
    for (int i = 15; i >= 0; --i, bits >>= 4) out[half * 16 + i] = kHex[bits & 0xf];
  }
}

}  // namespace

const char* to_string(KeyOrigin o) {
  switch (o) {
    case KeyOrigin::override_rule:
      return "override";
    case KeyOrigin::header:
      return "header";
    case KeyOrigin::cookie:
      return "cookie";
    case KeyOrigin::fallback_cookie:
      return "fallback_cookie";
    case KeyOrigin::client_ip:
      return "client_ip";
    case KeyOrigin::forwarded_for:
      return "forwarded_for";
    case KeyOrigin::random:
      return "random";
  }
  return "unknown";
}

Splitter::Splitter(const config::Split& split, std::string_view route_name)
    : seed_(salt_seed(split.salt.empty() ? route_name : std::string_view(split.salt))),
      key_source_(split.hash_on.source),
      key_name_(split.hash_on.source == config::KeySource::header ? lower(split.hash_on.name)
                                                                  : split.hash_on.name),
      fallback_(split.fallback),
      cookie_name_(split.hash_on.name),
      cookie_ttl_seconds_(
          std::chrono::duration_cast<std::chrono::seconds>(split.cookie_ttl).count()),
      trust_forwarded_for_(split.trust_forwarded_for) {
  overrides_.reserve(split.overrides.size());
  for (const auto& o : split.overrides)
    overrides_.push_back(
        {o.source, o.source == config::KeySource::header ? lower(o.name) : o.name, o.value, o.to});
}

Decision Splitter::decide(const SplitInput& in, std::uint32_t weight_bp, std::string& new_cookie_id,
                          RandomSource& rng) const {
  new_cookie_id.clear();

  for (const auto& o : overrides_) {
    auto v = read(in.headers, o.source, o.name);
    if (v && *v == o.value) return {o.to, KeyOrigin::override_rule, kBuckets};
  }

  auto hashed = [&](std::string_view key, KeyOrigin origin) {
    std::uint32_t b = bucket(key, seed_);
    return Decision{is_canary(b, weight_bp) ? config::Version::canary : config::Version::stable,
                    origin, b};
  };

  if (auto key = read(in.headers, key_source_, key_name_); key && !key->empty())
    return hashed(*key,
                  key_source_ == config::KeySource::header ? KeyOrigin::header : KeyOrigin::cookie);

  switch (fallback_) {
    case config::Fallback::cookie: {
      // With a cookie key this repeats the lookup above and finds nothing; with a header key it
      // finds the id issued on an earlier request.
      if (key_source_ == config::KeySource::header)
        if (auto c = find_cookie(in.headers, cookie_name_); c && !c->empty())
          return hashed(*c, KeyOrigin::cookie);
      fresh_id(new_cookie_id, rng);
      return hashed(new_cookie_id, KeyOrigin::fallback_cookie);
    }
    case config::Fallback::client_ip: {
      if (trust_forwarded_for_)
        if (auto xff = last_list_entry(in.headers, "x-forwarded-for"); xff && !xff->empty())
          return hashed(*xff, KeyOrigin::forwarded_for);
      if (auto ip = trim_ows(in.client_ip); !ip.empty()) return hashed(ip, KeyOrigin::client_ip);
      break;  // no address to hash (e.g. a unix socket peer): hashing "" would lump everyone
    }
    case config::Fallback::random:
      break;
  }
  std::uint32_t b = static_cast<std::uint32_t>(rng.next() % kBuckets);
  return {is_canary(b, weight_bp) ? config::Version::canary : config::Version::stable,
          KeyOrigin::random, b};
}

std::string Splitter::set_cookie_value(std::string_view id) const {
  std::string out;
  out.reserve(cookie_name_.size() + id.size() + 64);
  out.append(cookie_name_).append("=").append(id);
  out.append("; Path=/; Max-Age=").append(std::to_string(cookie_ttl_seconds_));
  out.append("; HttpOnly; SameSite=Lax");
  return out;
}

}  // namespace gp::routing
