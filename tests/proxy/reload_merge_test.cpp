// The reload merge rules of docs/design.md "Configuration and reload", through the same two calls
// the server makes on a reload: build_snapshot(config, metrics, previous) and
// RolloutManager::sync(snapshot, previous).
//  - a route whose YAML weight did not change keeps its live weight and rollout state;
//  - a route whose YAML weight changed takes the new weight (an operator edit wins);
//  - a new or changed rollout policy starts from the current weight;
//  - a changed canary cluster restarts the rollout from the first step;
//  - a removed and re-added route starts from the YAML;
//  - at startup (previous == nullptr) the state file restores weight and state when the YAML
//    weight matches what it was set from, and is ignored otherwise; a corrupt state file is
//    moved aside to *.corrupt.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "config/config.hpp"
#include "metrics/metrics.hpp"
#include "proxy/rollout_manager.hpp"
#include "proxy/snapshot.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using gp::proxy::RolloutManager;
using gp::proxy::Snapshot;

// A rollout policy that never ticks during a test (interval 1h).
const std::string kPolicy =
    "    rollout:\n"
    "      steps: [5, 50, 100]\n"
    "      interval: 1h\n"
    "      min_requests: 50\n"
    "      max_error_rate: 0.01\n";

// The same policy with another threshold: a changed policy.
const std::string kPolicyChanged =
    "    rollout:\n"
    "      steps: [5, 50, 100]\n"
    "      interval: 1h\n"
    "      min_requests: 50\n"
    "      max_error_rate: 0.02\n";

struct Yaml {
  std::string weight = "10";
  std::string canary = "v2";
  std::string rollout;        // "" = no rollout policy
  bool with_shop = true;      // the route under test
  std::string drain = "20s";  // an unrelated setting, to make a reload that changes something
  std::string other_weight = "0";

  std::string str() const {
    std::ostringstream y;
    y << "workers: 1\n"
         "timeouts: { drain: "
      << drain
      << " }\n"
         "listeners:\n"
         "  - { name: public, address: 127.0.0.1:18080 }\n"
         "clusters:\n"
         "  - { name: v1, endpoints: [127.0.0.1:9001] }\n"
         "  - { name: v2, endpoints: [127.0.0.1:9002] }\n"
         "  - { name: v3, endpoints: [127.0.0.1:9003, 127.0.0.1:9004] }\n"
         "routes:\n"
         "  - name: other\n"
         "    match: { path_prefix: /other }\n"
         "    stable: v1\n"
         "    canary: v2\n"
         "    split:\n"
         "      weight: "
      << other_weight
      << "\n"
         "      hash_on: { header: x-user-id }\n";
    if (with_shop) {
      y << "  - name: shop\n"
           "    match: { path_prefix: / }\n"
           "    stable: v1\n"
           "    canary: "
        << canary
        << "\n"
           "    split:\n"
           "      weight: "
        << weight
        << "\n"
           "      hash_on: { header: x-user-id }\n"
        << rollout;
    }
    return y.str();
  }
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A unique temp dir, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "gp-reload-merge-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (!p) throw std::runtime_error("mkdtemp failed");
    path = p;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
};

// One process's view: its Metrics, its RolloutManager and the published snapshot.
struct Proxy {
  gp::metrics::Metrics metrics{1, "test"};
  RolloutManager manager;
  std::shared_ptr<const Snapshot> snap;

  explicit Proxy(const std::string& state_dir = "") : manager(metrics, state_dir) {}

  // Startup (first call, previous == nullptr) or a reload, as the server does it.
  void load(const Yaml& y) {
    auto cfg = std::make_shared<const gp::config::Config>(gp::config::parse(y.str(), "test.yaml"));
    auto next = gp::proxy::build_snapshot(cfg, metrics, snap.get());
    manager.sync(*next, snap.get());
    snap = next;
  }

  const gp::proxy::RouteRuntime* route(const std::string& name) const {
    for (auto const& r : snap->routes)
      if (r.config->name == name) return &r;
    return nullptr;
  }

  std::uint32_t weight(const std::string& name) const {
    auto* r = route(name);
    EXPECT_NE(r, nullptr) << name;
    return r ? r->live->weight_bp.load() : 0xffffffffu;
  }

  std::string state(const std::string& name) const {
    auto st = manager.route_status(name);
    return std::string(st.at("state").as_string());
  }

  std::int64_t step_index(const std::string& name) const {
    auto st = manager.route_status(name);
    return st.at("step_index").to_number<std::int64_t>();
  }

  void act(const std::string& name, const std::string& action,
           std::optional<std::uint32_t> bp = std::nullopt) {
    auto r = manager.act(name, action, bp);
    ASSERT_EQ(r.http_status, 200u) << action << ": " << json::serialize(r.body);
  }

  // The value of grayproxy_canary_weight_percent{route="NAME"} on the metrics page.
  std::string weight_metric(const std::string& name) const {
    const std::string page = metrics.serialize();
    const std::string key = "grayproxy_canary_weight_percent{route=\"" + name + "\"} ";
    auto pos = page.find(key);
    if (pos == std::string::npos) return "<missing>";
    auto end = page.find('\n', pos);
    return page.substr(pos + key.size(), end - pos - key.size());
  }
};

// ---------------------------------------------------------------------------------------------
// Unchanged YAML weight: the live weight (and rollout state) carries on.
// ---------------------------------------------------------------------------------------------

TEST(ReloadMerge, UnchangedYamlWeightKeepsLiveWeightWithoutPolicy) {
  Proxy p;
  Yaml y;
  p.load(y);
  EXPECT_EQ(p.weight("shop"), 1000u);
  p.act("shop", "weight", 2500);
  EXPECT_EQ(p.weight("shop"), 2500u);
  auto live_before = p.route("shop")->live;

  y.drain = "5s";  // the file changed, the route's weight did not
  p.load(y);
  EXPECT_EQ(p.weight("shop"), 2500u);
  EXPECT_EQ(p.route("shop")->live, live_before) << "live state should carry over";
  EXPECT_EQ(p.route("shop")->live->configured_weight_bp, 1000u);
  EXPECT_EQ(p.state("shop"), "idle");
  EXPECT_EQ(p.weight_metric("shop"), "25");

  p.load(y);  // and a reload of the very same file
  EXPECT_EQ(p.weight("shop"), 2500u);
  EXPECT_EQ(p.weight("other"), 0u);
}

TEST(ReloadMerge, UnchangedYamlWeightKeepsLiveWeightAndRolloutState) {
  Proxy p;
  Yaml y;
  y.rollout = kPolicy;
  p.load(y);
  EXPECT_EQ(p.state("shop"), "progressing");
  EXPECT_EQ(p.weight("shop"), 1000u);

  p.act("shop", "weight", 2500);
  p.act("shop", "pause");
  EXPECT_EQ(p.state("shop"), "paused");
  EXPECT_EQ(p.weight("shop"), 2500u);

  y.drain = "7s";
  p.load(y);
  EXPECT_EQ(p.weight("shop"), 2500u);
  EXPECT_EQ(p.state("shop"), "paused");
  EXPECT_EQ(p.weight_metric("shop"), "25");

  // Promoted stays promoted across a reload too.
  p.act("shop", "promote");
  EXPECT_EQ(p.weight("shop"), 10000u);
  p.load(y);
  EXPECT_EQ(p.state("shop"), "promoted");
  EXPECT_EQ(p.weight("shop"), 10000u);
  EXPECT_EQ(p.weight_metric("shop"), "100");
}

// ---------------------------------------------------------------------------------------------
// Changed YAML weight: the operator's edit wins.
// ---------------------------------------------------------------------------------------------

TEST(ReloadMerge, ChangedYamlWeightWinsWithoutPolicy) {
  Proxy p;
  Yaml y;
  p.load(y);
  p.act("shop", "weight", 2500);
  y.weight = "40";
  p.load(y);
  EXPECT_EQ(p.weight("shop"), 4000u);
  EXPECT_EQ(p.route("shop")->live->configured_weight_bp, 4000u);
  EXPECT_EQ(p.weight_metric("shop"), "40");

  // And back: an edit back to the old YAML value is a change too.
  y.weight = "10";
  p.load(y);
  EXPECT_EQ(p.weight("shop"), 1000u);
}

TEST(ReloadMerge, ChangedYamlWeightWinsAndRolloutContinuesFromThere) {
  Proxy p;
  Yaml y;
  y.rollout = kPolicy;
  p.load(y);
  p.act("shop", "weight", 2500);
  y.weight = "40";
  p.load(y);
  EXPECT_EQ(p.weight("shop"), 4000u);
  EXPECT_EQ(p.state("shop"), "progressing");
  EXPECT_EQ(p.step_index("shop"), 1) << "40% is judged as the step at or above it (50%)";
  EXPECT_EQ(p.weight_metric("shop"), "40");

  // A paused rollout stays paused at the operator's new weight.
  p.act("shop", "pause");
  y.weight = "12.5";
  p.load(y);
  EXPECT_EQ(p.weight("shop"), 1250u);
  EXPECT_EQ(p.state("shop"), "paused");
}

// ---------------------------------------------------------------------------------------------
// A new or changed rollout policy starts from the current weight.
// ---------------------------------------------------------------------------------------------

TEST(ReloadMerge, NewRolloutPolicyStartsFromCurrentWeight) {
  Proxy p;
  Yaml y;
  p.load(y);
  EXPECT_EQ(p.state("shop"), "idle");
  p.act("shop", "weight", 3000);

  y.rollout = kPolicy;  // YAML weight unchanged (10): the live 30% is the current weight
  p.load(y);
  EXPECT_EQ(p.state("shop"), "progressing");
  EXPECT_EQ(p.weight("shop"), 3000u);
  EXPECT_EQ(p.step_index("shop"), 1) << "30% is judged as the step at or above it (50%)";
  EXPECT_EQ(p.weight_metric("shop"), "30");
}

TEST(ReloadMerge, ChangedRolloutPolicyStartsFromCurrentWeight) {
  Proxy p;
  Yaml y;
  y.rollout = kPolicy;
  p.load(y);
  p.act("shop", "weight", 3000);
  p.act("shop", "pause");
  EXPECT_EQ(p.state("shop"), "paused");

  y.rollout = kPolicyChanged;
  p.load(y);
  EXPECT_EQ(p.weight("shop"), 3000u);
  EXPECT_EQ(p.state("shop"), "progressing") << "a new policy starts a new rollout";
  auto st = p.manager.route_status("shop");
  EXPECT_EQ(st.at("weight_bp").to_number<std::uint32_t>(), 3000u);
}

TEST(ReloadMerge, NewRolloutPolicyWithChangedYamlWeightStartsFromTheNewWeight) {
  Proxy p;
  Yaml y;
  p.load(y);
  p.act("shop", "weight", 3000);
  y.rollout = kPolicy;
  y.weight = "60";
  p.load(y);
  EXPECT_EQ(p.weight("shop"), 6000u);
  EXPECT_EQ(p.state("shop"), "progressing");
  EXPECT_EQ(p.step_index("shop"), 2);
}

// ---------------------------------------------------------------------------------------------
// A changed canary cluster restarts the rollout from the first step.
// ---------------------------------------------------------------------------------------------

TEST(ReloadMerge, CanaryClusterChangeRestartsAtFirstStep) {
  Proxy p;
  Yaml y;
  y.rollout = kPolicy;
  p.load(y);
  p.act("shop", "weight", 5000);
  EXPECT_EQ(p.weight("shop"), 5000u);

  y.canary = "v3";  // a new build: YAML weight unchanged
  p.load(y);
  EXPECT_EQ(p.weight("shop"), 500u) << "first step of [5, 50, 100]";
  EXPECT_EQ(p.state("shop"), "progressing");
  EXPECT_EQ(p.step_index("shop"), 0);
  EXPECT_EQ(p.weight_metric("shop"), "5");

  // Also from a paused or finished rollout.
  p.act("shop", "promote");
  EXPECT_EQ(p.weight("shop"), 10000u);
  y.canary = "v2";
  p.load(y);
  EXPECT_EQ(p.weight("shop"), 500u);
  EXPECT_EQ(p.state("shop"), "progressing");
  EXPECT_EQ(p.step_index("shop"), 0);
}

// ---------------------------------------------------------------------------------------------
// A route removed by one reload and re-added by the next starts from the YAML.
// ---------------------------------------------------------------------------------------------

TEST(ReloadMerge, RouteRemovedAndReAddedStartsFromYaml) {
  Proxy p;
  Yaml y;
  p.load(y);
  p.act("shop", "weight", 2500);

  y.with_shop = false;
  p.load(y);
  EXPECT_EQ(p.route("shop"), nullptr);
  EXPECT_EQ(p.manager.act("shop", "weight", 100).http_status, 404u);

  y.with_shop = true;
  p.load(y);
  EXPECT_EQ(p.weight("shop"), 1000u);
  EXPECT_EQ(p.state("shop"), "idle");
  EXPECT_EQ(p.weight_metric("shop"), "10");
}

TEST(ReloadMerge, RouteWithRolloutRemovedAndReAddedStartsFromYaml) {
  TempDir dir;  // with persistence: the state file must not bring the old state back either
  Proxy p(dir.str());
  Yaml y;
  y.rollout = kPolicy;
  p.load(y);
  p.act("shop", "weight", 2500);
  p.act("shop", "pause");

  y.with_shop = false;
  p.load(y);
  y.with_shop = true;
  p.load(y);
  EXPECT_EQ(p.weight("shop"), 1000u);
  EXPECT_EQ(p.state("shop"), "progressing");
  EXPECT_EQ(p.step_index("shop"), 1);
}

// ---------------------------------------------------------------------------------------------
// State file: a restart resumes where it was unless the YAML weight changed meanwhile.
// ---------------------------------------------------------------------------------------------

TEST(ReloadMerge, StateFileRoundTripRestoresWeightAndState) {
  TempDir dir;
  Yaml y;
  y.rollout = kPolicy;
  {
    Proxy first(dir.str());
    first.load(y);
    first.act("shop", "weight", 2500);
    first.act("shop", "pause");
    first.act("other", "weight", 700);  // a route without a policy persists its weight too
  }
  const fs::path state = dir.path / "rollout-state.json";
  ASSERT_TRUE(fs::exists(state));
  {
    auto doc = json::parse(read_file(state));
    auto const& shop = doc.at("routes").at("shop").as_object();
    EXPECT_EQ(shop.at("weight_bp").to_number<std::uint32_t>(), 2500u);
    EXPECT_EQ(shop.at("configured_weight_bp").to_number<std::uint32_t>(), 1000u);
  }

  Proxy second(dir.str());  // a restart: previous == nullptr
  second.load(y);
  EXPECT_EQ(second.weight("shop"), 2500u);
  EXPECT_EQ(second.state("shop"), "paused");
  EXPECT_EQ(second.weight("other"), 700u);
  EXPECT_EQ(second.weight_metric("shop"), "25");
  EXPECT_EQ(second.weight_metric("other"), "7");
  EXPECT_FALSE(fs::exists(dir.path / "rollout-state.json.corrupt"));
}

TEST(ReloadMerge, StateFileIgnoredWhenYamlWeightChanged) {
  TempDir dir;
  Yaml y;
  y.rollout = kPolicy;
  {
    Proxy first(dir.str());
    first.load(y);
    first.act("shop", "weight", 2500);
    first.act("shop", "pause");
    first.act("other", "weight", 700);
  }
  y.weight = "20";  // edited while the proxy was down
  y.other_weight = "3";
  Proxy second(dir.str());
  second.load(y);
  EXPECT_EQ(second.weight("shop"), 2000u);
  EXPECT_EQ(second.state("shop"), "progressing") << "a fresh rollout from the YAML weight";
  EXPECT_EQ(second.weight("other"), 300u);
  EXPECT_EQ(second.weight_metric("shop"), "20");

  // The state file now records the new configured weight.
  auto doc = json::parse(read_file(dir.path / "rollout-state.json"));
  EXPECT_EQ(doc.at("routes").at("shop").at("configured_weight_bp").to_number<std::uint32_t>(),
            2000u);
  EXPECT_EQ(doc.at("routes").at("shop").at("weight_bp").to_number<std::uint32_t>(), 2000u);
}

TEST(ReloadMerge, StateFileNotReadOnReload) {
  // A reload merges from the running state, not from the file: editing the file under a
  // running proxy changes nothing.
  TempDir dir;
  Yaml y;
  Proxy p(dir.str());
  p.load(y);
  p.act("shop", "weight", 2500);
  {
    std::ofstream out(dir.path / "rollout-state.json", std::ios::trunc);
    out << R"({"version":1,"routes":{"shop":{"configured_weight_bp":1000,"weight_bp":9000}}})";
  }
  y.drain = "3s";
  p.load(y);
  EXPECT_EQ(p.weight("shop"), 2500u);
}

TEST(ReloadMerge, CorruptStateFileIsMovedAside) {
  TempDir dir;
  const fs::path state = dir.path / "rollout-state.json";
  const std::string garbage = "{\"version\": 1, \"routes\": {\"shop\": {\"weight_bp\": 25";
  {
    std::ofstream out(state, std::ios::binary);
    out << garbage;
  }
  Yaml y;
  y.rollout = kPolicy;
  Proxy p(dir.str());
  p.load(y);
  EXPECT_EQ(p.weight("shop"), 1000u);
  EXPECT_EQ(p.state("shop"), "progressing");

  const fs::path corrupt = dir.path / "rollout-state.json.corrupt";
  ASSERT_TRUE(fs::exists(corrupt));
  EXPECT_EQ(read_file(corrupt), garbage);
  // A fresh, valid state file replaces it.
  ASSERT_TRUE(fs::exists(state));
  boost::system::error_code ec;
  auto v = json::parse(read_file(state), ec);
  EXPECT_FALSE(ec) << read_file(state);
  EXPECT_TRUE(v.is_object());
  const std::string page = p.metrics.serialize();
  EXPECT_NE(page.find("grayproxy_state_load_failures_total 1"), std::string::npos) << page;
}

TEST(ReloadMerge, StateFileThatIsNotAnObjectIsCorrupt) {
  TempDir dir;
  const fs::path state = dir.path / "rollout-state.json";
  {
    std::ofstream out(state, std::ios::binary);
    out << "[1, 2, 3]\n";
  }
  Proxy p(dir.str());
  p.load(Yaml{});
  EXPECT_EQ(p.weight("shop"), 1000u);
  EXPECT_TRUE(fs::exists(dir.path / "rollout-state.json.corrupt"));
}

}  // namespace
