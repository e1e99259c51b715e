#include "proxy/cli.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

namespace gp::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

namespace {

constexpr std::string_view kDefaultAdmin = "http://127.0.0.1:9901";
constexpr auto kTimeout = std::chrono::seconds(10);
constexpr std::array<std::string_view, 4> kRolloutActions = {"promote", "abort", "pause", "resume"};

constexpr const char* kUsage =
    R"(usage: grayproxy status [--admin URL]
       grayproxy promote|abort|pause|resume ROUTE [--admin URL] [--token-file FILE]
       grayproxy weight ROUTE PERCENT [--admin URL] [--token-file FILE]
  --admin URL         the admin API (default http://127.0.0.1:9901; HOST:PORT works too)
  --token-file FILE   send "Authorization: Bearer <token>" with the token in FILE
exit status: 0 done, 1 the admin is unreachable or refused, 2 usage error
)";

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string trim(std::string s) {
  auto ws = [](unsigned char c) { return std::isspace(c) != 0; };
  while (!s.empty() && ws(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && ws(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

// Route names are [A-Za-z0-9_.-]; anything else is percent-encoded so the target stays valid.
std::string encode_segment(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// --- JSON accessors that tolerate missing or mistyped fields ------------------------------

const json::object* obj(const json::value* v) {
  return v && v->is_object() ? &v->as_object() : nullptr;
}
const json::value* field(const json::object* o, std::string_view key) {
  return o ? o->if_contains(key) : nullptr;
}
std::optional<double> number(const json::value* v) {
  if (!v || !v->is_number()) return std::nullopt;
  return v->to_number<double>();
}
std::string string_of(const json::value* v, std::string fallback = "") {
  if (!v || !v->is_string()) return fallback;
  return std::string(v->as_string());
}

// --- the table ------------------------------------------------------------------------------

struct Row {
  std::string name, state, weight, step, bar, last;
};

std::string render_rows(const std::vector<Row>& rows) {
  std::vector<Row> all;
  all.push_back({"ROUTE", "STATE", "WEIGHT", "STEP", "PROGRESS", "LAST VERDICT"});
  all.insert(all.end(), rows.begin(), rows.end());
  std::size_t w[5] = {0, 0, 0, 0, 0};
  for (auto const& r : all) {
    w[0] = std::max(w[0], r.name.size());
    w[1] = std::max(w[1], r.state.size());
    w[2] = std::max(w[2], r.weight.size());
    w[3] = std::max(w[3], r.step.size());
    w[4] = std::max(w[4], r.bar.size());
  }
  auto pad = [](const std::string& s, std::size_t n, bool right = false) {
    std::string fill(n > s.size() ? n - s.size() : 0, ' ');
    return right ? fill + s : s + fill;
  };
  std::string out;
  for (auto const& r : all) {
    std::string line = pad(r.name, w[0]) + "  " + pad(r.state, w[1]) + "  " +
                       pad(r.weight, w[2], true) + "  " + pad(r.step, w[3], true) + "  " +
                       pad(r.bar, w[4]) + "  " + r.last;
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

Row route_row(const json::object& r) {
  Row row;
  row.name = string_of(field(&r, "name"), "?");
  const json::value* canary = field(&r, "canary");
  const bool has_canary = canary && canary->is_string();
  const json::object* ro = obj(field(&r, "rollout"));
  if (!has_canary) {
    row.state = "plain";
    row.weight = row.step = row.bar = row.last = "-";
    return row;
  }
  row.state = string_of(field(ro, "state"), "idle");
  const auto weight = number(field(&r, "weight_percent"));
  row.weight = weight ? format_percent(*weight) : "?";
  row.bar = progress_bar(weight.value_or(0));
  const json::value* steps = field(&r, "steps_percent");
  const auto step_index = number(field(ro, "step_index"));
  if (steps && steps->is_array() && !steps->as_array().empty() && step_index)
    row.step = std::to_string(static_cast<long long>(*step_index) + 1) + "/" +
               std::to_string(steps->as_array().size());
  else
    row.step = "-";
  row.last = "-";
  const json::value* js = field(ro, "judgements");
  if (js && js->is_array() && !js->as_array().empty()) {
    const json::object* j = obj(&js->as_array().back());
    const std::string verdict = string_of(field(j, "verdict"), "?");
    const std::string reason = string_of(field(j, "reason"));
    row.last = reason.empty() ? verdict : verdict + ": " + reason;
  }
  return row;
}

// --- HTTP -------------------------------------------------------------------------------------

struct Answer {
  std::string transport_error;  // non-empty: no answer at all
  unsigned status = 0;
  std::string reason;
  std::string body;
};

std::string describe_error(const beast::error_code& ec) {
  if (ec == beast::error::timeout)
    return "timed out after " + std::to_string(kTimeout.count()) + " s";
  if (ec == asio::error::host_not_found || ec == asio::error::host_not_found_try_again)
    return "host not found";
  return lower(ec.message());
}

Answer call(const AdminUrl& url, http::verb method, const std::string& path,
            const std::string& body, const std::string& token) {
  Answer a;
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(url.host, url.port, ec);
  if (ec) {
    a.transport_error = describe_error(ec);
    return a;
  }
  stream.expires_after(kTimeout);
  stream.connect(results, ec);
  if (ec) {
    a.transport_error = describe_error(ec);
    return a;
  }
  http::request<http::string_body> req{method, url.prefix + path, 11};
  const bool v6 = url.host.find(':') != std::string::npos;
  req.set(http::field::host, (v6 ? "[" + url.host + "]" : url.host) + ":" + url.port);
  req.set(http::field::user_agent, std::string("grayproxy-cli/") + GRAYPROXY_VERSION);
  req.set(http::field::accept, "application/json");
  req.set(http::field::connection, "close");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  if (method == http::verb::post) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
  }
  http::write(stream, req, ec);
  if (ec) {
    a.transport_error = describe_error(ec);
    return a;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  http::read(stream, buffer, parser, ec);
  if (ec) {
    a.transport_error = describe_error(ec);
    return a;
  }
  auto const& res = parser.get();
  a.status = res.result_int();
  a.reason = std::string(res.reason());
  a.body = res.body();
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  return a;
}

// The admin's error text: {"error": "..."} or the plain body.
std::string error_text(const Answer& a) {
  boost::system::error_code ec;
  auto v = json::parse(a.body, ec);
  if (!ec) {
    const json::object* o = obj(&v);
    for (auto key : {"error", "result"}) {
      std::string s = string_of(field(o, key));
      if (!s.empty()) return s;
    }
  }
  std::string t = trim(a.body);
  return t.empty() ? "(no error text)" : t;
}

int fail(const std::string& message) {
  std::fprintf(stderr, "grayproxy: %s\n", message.c_str());
  return 1;
}

int usage(const std::string& what) {
  std::fprintf(stderr, "grayproxy: %s\n%s", what.c_str(), kUsage);
  return 2;
}

// Checks transport and status; on success parses the body into `out`. Returns 0 or the exit
// code after printing the error.
int checked(const AdminUrl& url, const Answer& a, json::value& out) {
  if (!a.transport_error.empty())
    return fail("cannot reach admin at " + url.str() + ": " + a.transport_error);
  if (a.status >= 400) {
    std::string msg = "admin at " + url.str() + " answered " + std::to_string(a.status) +
                      (a.reason.empty() ? "" : " " + a.reason) + ": " + error_text(a);
    if (a.status == 401) msg += " (pass the admin token with --token-file FILE)";
    return fail(msg);
  }
  boost::system::error_code ec;
  out = json::parse(a.body, ec);
  if (ec)
    return fail("admin at " + url.str() + " answered " + std::to_string(a.status) +
                " with a body that is not JSON: " + ec.message());
  return 0;
}

bool valid_weight(std::string& w) {
  if (!w.empty() && w.back() == '%') w.pop_back();
  if (w.empty() || w.size() > 20) return false;
  bool dot = false, digits = false;
  for (char c : w) {
    if (c == '.') {
      if (dot) return false;
      dot = true;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      digits = true;
    } else {
      return false;
    }
  }
  return digits && w.front() != '.' && w.back() != '.';
}

}  // namespace

std::string AdminUrl::str() const {
  const bool v6 = host.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + host + "]" : host) + ":" + port + prefix;
}

std::optional<AdminUrl> parse_admin_url(std::string_view text, std::string& error) {
  AdminUrl u;
  std::string_view rest = text;
  bool scheme = false;
  if (auto p = rest.find("://"); p != std::string_view::npos) {
    std::string s = lower(std::string(rest.substr(0, p)));
    if (s != "http") {
      error = "only http:// admin URLs are supported, got \"" + std::string(text) + "\"";
      return std::nullopt;
    }
    rest = rest.substr(p + 3);
    scheme = true;
  }
  std::string_view authority = rest;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    authority = rest.substr(0, slash);
    std::string prefix(rest.substr(slash));
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    u.prefix = prefix;
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) {
      error = "bad admin URL \"" + std::string(text) + "\": unclosed [";
      return std::nullopt;
    }
    u.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        error = "bad admin URL \"" + std::string(text) + "\"";
        return std::nullopt;
      }
      port = after.substr(1);
    }
  } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    u.host = std::string(authority.substr(0, colon));
    port = authority.substr(colon + 1);
  } else {
    u.host = std::string(authority);
  }
  if (u.host.empty()) {
    error = "bad admin URL \"" + std::string(text) + "\": no host";
    return std::nullopt;
  }
  if (port.empty()) {
    if (!scheme) {
      error = "bad admin URL \"" + std::string(text) + "\": expected http://HOST:PORT or HOST:PORT";
      return std::nullopt;
    }
    port = "80";
  }
  const bool digits = std::all_of(port.begin(), port.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) != 0;
  });
  if (!digits || port.size() > 5 || std::stoul(std::string(port)) == 0 ||
      std::stoul(std::string(port)) > 65535) {
    error = "bad admin URL \"" + std::string(text) + "\": bad port";
    return std::nullopt;
  }
  u.port = std::string(port);
  return u;
}

std::string progress_bar(double weight_percent, int width) {
  if (width < 2) width = 2;
  double w = std::isnan(weight_percent) ? 0 : std::clamp(weight_percent, 0.0, 100.0);
  int filled = static_cast<int>(std::lround(w / 100.0 * width));
  if (w > 0 && filled == 0) filled = 1;
  if (w < 100 && filled == width) filled = width - 1;
  return "[" + std::string(static_cast<std::size_t>(filled), '#') +
         std::string(static_cast<std::size_t>(width - filled), '.') + "]";
}

std::string format_percent(double percent) {
  if (!std::isfinite(percent)) return "?";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", std::round(percent * 100) / 100);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  if (s == "-0") s = "0";
  return s + "%";
}

std::string render_status(const json::value& status) {
  const json::object* root = obj(&status);
  std::vector<Row> rows;
  const json::value* routes = field(root, "routes");
  if (routes && routes->is_array())
    for (auto const& r : routes->as_array())
      if (r.is_object()) rows.push_back(route_row(r.as_object()));
  std::string out;
  const json::value* draining = field(root, "draining");
  if (draining && draining->is_bool() && draining->as_bool())
    out += "the proxy is draining (shutting down)\n";
  if (rows.empty()) return out + "no routes\n";
  return out + render_rows(rows);
}

std::string describe_action(std::string_view action, std::string_view route,
                            const json::value& answer) {
  const json::object* o = obj(&answer);
  const std::string state = string_of(field(o, "state"), "?");
  const auto weight = number(field(o, "weight_percent"));
  const std::string w = weight ? format_percent(*weight) : "?";
  std::string what;
  if (action == "weight")
    return std::string(route) + ": canary weight set to " + w + " (state " + state + ")";
  if (action == "pause")
    what = "rollout paused";
  else if (action == "resume")
    what = "rollout resumed";
  else if (action == "promote")
    what = "canary promoted";
  else if (action == "abort")
    what = "rollout aborted, canary rolled back";
  else
    what = std::string(action) + " done";
  return std::string(route) + ": " + what + " (state " + state + ", canary weight " + w + ")";
}

bool is_command(std::string_view word) {
  return word == "status" || word == "weight" ||
         std::find(kRolloutActions.begin(), kRolloutActions.end(), word) != kRolloutActions.end();
}

int run(int argc, char** argv) {
  if (argc < 2 || !is_command(argv[1])) return usage("expected a command");
  const std::string command = argv[1];
  std::string admin(kDefaultAdmin);
  std::string token_file;
  std::vector<std::string> args;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto option = [&](std::string_view name, std::string& out) -> std::optional<bool> {
      if (arg == name) {
        if (i + 1 >= argc) return false;
        out = argv[++i];
        return true;
      }
      if (arg.starts_with(std::string(name) + "=")) {
        out = arg.substr(name.size() + 1);
        return true;
      }
      return std::nullopt;
    };
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (auto r = option("--admin", admin)) {
      if (!*r) return usage("--admin needs a URL");
    } else if (auto r2 = option("--token-file", token_file)) {
      if (!*r2) return usage("--token-file needs a file");
    } else if (arg.size() > 1 && arg.front() == '-' && arg != "-") {
      return usage("unknown option " + arg);
    } else {
      args.push_back(arg);
    }
  }

  std::string error;
  auto url = parse_admin_url(admin, error);
  if (!url) return usage(error);

  std::string token;
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    std::stringstream ss;
    ss << in.rdbuf();
    if (!in) return fail("cannot read the admin token from " + token_file);
    token = trim(ss.str());
    if (token.empty()) return fail("the admin token file " + token_file + " is empty");
  }

  json::value answer;
  if (command == "status") {
    if (!args.empty()) return usage("status takes no arguments, got " + args.front());
    if (int rc = checked(*url, call(*url, http::verb::get, "/status", "", token), answer))
      return rc;
    std::fputs(render_status(answer).c_str(), stdout);
    return 0;
  }
  if (command == "weight") {
    if (args.size() != 2) return usage("usage: grayproxy weight ROUTE PERCENT");
    std::string w = args[1];
    if (!valid_weight(w))
      return usage("the weight must be a percentage like 10 or 12.5, got \"" + args[1] + "\"");
    const std::string path = "/routes/" + encode_segment(args[0]) + "/weight";
    if (int rc = checked(*url, call(*url, http::verb::post, path, "{\"weight\": " + w + "}", token),
                         answer))
      return rc;
    std::puts(describe_action(command, args[0], answer).c_str());
    return 0;
  }
  if (args.size() != 1) return usage("usage: grayproxy " + command + " ROUTE");
  const std::string path = "/routes/" + encode_segment(args[0]) + "/rollout/" + command;
  if (int rc = checked(*url, call(*url, http::verb::post, path, "", token), answer)) return rc;
  std::puts(describe_action(command, args[0], answer).c_str());
  return 0;
}

}  // namespace gp::cli
