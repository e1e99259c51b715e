// The operator CLI: `grayproxy status` prints the rollout table of a running proxy, and
// `grayproxy promote|abort|pause|resume ROUTE` and `grayproxy weight ROUTE N` call its admin
// API. A synchronous Boost.Beast client; exit 0 on success, 1 when the admin is unreachable or
// refuses (4xx/5xx), 2 on a usage error.
#pragma once

#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gp::cli {

// True for the words main() hands over to run(): status, promote, abort, pause, resume, weight.
bool is_command(std::string_view word);

// argv[1] is the command. Writes to stdout/stderr; returns the exit code.
int run(int argc, char** argv);

// --admin: "http://HOST:PORT[/PREFIX]", "HOST:PORT" or "[V6]:PORT" (port default 80 with a
// scheme). Only http.
struct AdminUrl {
  std::string host;  // without brackets
  std::string port;
  std::string prefix;       // "" or "/something" (no trailing slash)
  std::string str() const;  // as given back in messages: http://HOST:PORT[/PREFIX]
};
std::optional<AdminUrl> parse_admin_url(std::string_view text, std::string& error);

// "[#####...............]": `width` cells for 0..100%. Any weight above 0 shows at least one
// '#', any weight below 100 at least one '.'. Out-of-range or NaN weights are clamped.
std::string progress_bar(double weight_percent, int width = 20);

// A percentage as operators write it: "10%", "12.5%", "0.01%".
std::string format_percent(double percent);

// The table `grayproxy status` prints for a /status document: one row per route with name,
// state, weight, step i/n, bar, and the last verdict with its reason.
std::string render_status(const boost::json::value& status);

// The line printed for a successful action (the admin's 200 JSON answer).
std::string describe_action(std::string_view action, std::string_view route,
                            const boost::json::value& answer);

}  // namespace gp::cli
