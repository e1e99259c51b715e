#include "proxy/upstream/reuse.hpp"

namespace gp::proxy {

ReuseVerdict decide_reuse(const ReuseFacts& f) {
  if (!f.exchange_ok || !f.response_complete) return ReuseVerdict::aborted;
  if (f.leftover > 0) return ReuseVerdict::stray_bytes;
  // 1xx: interim or switched protocols, never the end of an exchange.
  if (f.status < 200 || f.close_delimited || !f.keep_alive || f.version != 11)
    return ReuseVerdict::unframed;
  // These end at their head whatever they declare; an upstream that sends the declared bytes
  // anyway would have them read as the next response.
  const bool bodiless =
      f.method == boost::beast::http::verb::head || f.status == 204 || f.status == 304;
  if (bodiless && f.declared_body) return ReuseVerdict::unframed;
  return ReuseVerdict::reuse;
}

}  // namespace gp::proxy
