#include "proxy/upstream/retry_state.hpp"

namespace gp::proxy {

config::Retries effective_retries(const config::Route& route, std::size_t endpoints) {
  if (route.retries) return *route.retries;
  return config::Retries{static_cast<std::uint32_t>(endpoints > 0 ? endpoints - 1 : 0),
                         config::kRetryConnectFailure};
}

}  // namespace gp::proxy
