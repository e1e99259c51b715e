// The retry and endpoint choice of one request, as pure decisions: which endpoint the next
// attempt goes to, and whether a failed attempt may be sent once more (Envoy's retry state).
#pragma once

#include <boost/container/small_vector.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "config/config.hpp"

namespace gp::proxy {

// The route's policy; without one, a failed connection moves on to each other endpoint of
// the cluster once, nothing else is retried.
config::Retries effective_retries(const config::Route& route, std::size_t endpoints);

class RetryState {
 public:
  // resendable: the request may be sent twice (an idempotent method without a body).
  RetryState(const config::Retries& policy, bool resendable)
      : policy_(policy), left_(policy.attempts), resendable_(resendable) {}

  // Whether the request may go once more after `condition` (a config::RetryOn bit); `sent`:
  // the failed attempt had sent request bytes.
  bool may_retry(std::uint8_t condition, bool sent) const {
    return (policy_.on & condition) != 0 && left_ > 0 && (!sent || resendable_);
  }
  void use_retry() { --left_; }

  // The extra attempt on a fresh connection when a pooled one turned out closed: once per
  // request, for a request that may be sent twice; not a retry of the policy.
  bool may_retry_stale() const { return resendable_ && !stale_used_; }
  void use_stale_retry() { stale_used_ = true; }
  bool stale_used() const { return stale_used_; }

  void tried(std::size_t endpoint) { tried_.push_back(endpoint); }
  std::span<const std::size_t> tried() const { return tried_; }

 private:
  config::Retries policy_;
  std::uint32_t left_;
  bool resendable_;
  bool stale_used_ = false;
  boost::container::small_vector<std::size_t, 4> tried_;
};

// Round robin over `n` endpoints from `start`: the first not ejected and not tried yet for
// the request; when every available one was tried, the first not ejected; none when all are
// ejected.
template <class Ejected>
std::optional<std::size_t> pick_endpoint(std::size_t n, std::uint32_t start, Ejected&& ejected,
                                         std::span<const std::size_t> tried) {
  for (int pass = 0; pass < 2; ++pass) {
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t index = (start + i) % n;
      if (ejected(index)) continue;
      if (pass == 0) {
        bool seen = false;
        for (std::size_t t : tried) seen = seen || t == index;
        if (seen) continue;
      }
      return index;
    }
  }
  return std::nullopt;
}

}  // namespace gp::proxy
