#include "proxy/demo.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <thread>

namespace gp::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

asio::awaitable<void> serve(tcp::socket socket, std::string version) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    http::request<http::string_body> req;
    stream.expires_after(std::chrono::seconds(60));
    auto [ec, n] = co_await http::async_read(stream, buffer, req, use_tuple);
    if (ec) break;
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::server, "grayproxy-demo-" + version);
    res.set(http::field::content_type, "text/plain");
    std::string user(req["x-user-id"]);
    res.body() = "hello from " + version + (user.empty() ? "" : " (user " + user + ")") + "\n";
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    auto [wec, wn] = co_await http::async_write(stream, res, use_tuple);
    if (wec || !res.keep_alive()) break;
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> accept(tcp::acceptor& acceptor, std::string version) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
    if (ec) co_return;
    asio::co_spawn(acceptor.get_executor(), serve(std::move(socket), version), asio::detached);
  }
}

}  // namespace

struct DemoUpstreams::Impl {
  asio::io_context ioc{1};
  tcp::acceptor stable{ioc, {asio::ip::make_address("127.0.0.1"), 0}};
  tcp::acceptor canary{ioc, {asio::ip::make_address("127.0.0.1"), 0}};
  std::thread thread;
};

DemoUpstreams::DemoUpstreams() : impl_(std::make_unique<Impl>()) {
  asio::co_spawn(impl_->ioc, accept(impl_->stable, "stable"), asio::detached);
  asio::co_spawn(impl_->ioc, accept(impl_->canary, "canary"), asio::detached);
  impl_->thread = std::thread([this] { impl_->ioc.run(); });
}

DemoUpstreams::~DemoUpstreams() {
  impl_->ioc.stop();
  impl_->thread.join();
}

unsigned short DemoUpstreams::stable_port() const {
  return impl_->stable.local_endpoint().port();
}
unsigned short DemoUpstreams::canary_port() const {
  return impl_->canary.local_endpoint().port();
}

config::Config demo_config(const DemoUpstreams& up, const std::string& listen,
                           const std::string& admin) {
  const std::string yaml = R"(workers: 2
admin: { address: )" + admin +
                           R"( }
listeners:
  - { name: public, address: )" +
                           listen + R"( }
clusters:
  - { name: demo-stable, endpoints: [127.0.0.1:)" +
                           std::to_string(up.stable_port()) + R"(] }
  - { name: demo-canary, endpoints: [127.0.0.1:)" +
                           std::to_string(up.canary_port()) + R"(] }
routes:
  - name: demo
    match: { path_prefix: / }
    stable: demo-stable
    canary: demo-canary
    split:
      weight: 20
      hash_on: { header: x-user-id }
      fallback: random
      expose_version: true
      overrides:
        - { header: x-canary, value: always, to: canary }
        - { header: x-canary, value: never, to: stable }
)";
  return config::parse(yaml, "<demo>");
}

std::string demo_banner(const config::Config& cfg) {
  const std::string url = "http://" + cfg.listeners.at(0).address.str();
  const std::string admin = "http://" + cfg.admin.address.str();
  return "grayproxy demo: 20% of users go to the canary.\n"
         "  Requests without a user id are split at random:\n"
         "    for i in $(seq 10); do curl -s " +
         url +
         "/; done\n"
         "  A user id sticks to one version:\n"
         "    for i in $(seq 5); do curl -s -H 'x-user-id: alice' " +
         url +
         "/; done\n"
         "  Force a version:\n"
         "    curl -s -H 'x-canary: always' " +
         url +
         "/\n"
         "  Metrics and status:\n"
         "    curl -s " +
         admin +
         "/metrics | grep grayproxy_requests_total\n"
         "    curl -s " +
         admin +
         "/status\n"
         "  Stop with Ctrl-C.\n";
}

}  // namespace gp::proxy
