#include "routing/rollout.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>
#include <vector>

#include "routing/rollout_stats.hpp"

namespace gp::routing {

namespace {

constexpr std::uint32_t kFull = 10000;

std::string printf_string(const char* fmt, double a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, a);
  return buf;
}

// 0.0123 -> "1.23%"
std::string rate(double r) {
  return std::isnan(r) ? "n/a" : printf_string("%.2f%%", r * 100);
}

// 1250 -> "12.5%"
std::string weight(std::uint32_t bp) {
  return printf_string("%g%%", bp / 100.0);
}

std::string pvalue(double p) {
  return printf_string("%.3g", p);
}

std::string millis(double seconds) {
  return printf_string("%.0fms", seconds * 1000);
}

std::string fraction(std::uint64_t errors, std::uint64_t requests) {
  return std::to_string(errors) + "/" + std::to_string(requests);
}

// "1 pass", "2 passes"
std::string count(std::uint32_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

config::Rollout normalized(config::Rollout p) {
  if (p.steps_bp.empty()) p.steps_bp = {kFull};
  for (std::uint32_t& s : p.steps_bp) s = std::min(s, kFull);
  p.failure_limit = std::max<std::uint32_t>(p.failure_limit, 1);
  p.consecutive_successes = std::max<std::uint32_t>(p.consecutive_successes, 1);
  auto clamp_confidence = [](double c) { return std::min(c >= 0.5 ? c : 0.5, 0.9999); };  // NaN
  p.confidence = clamp_confidence(p.confidence);
  p.power = clamp_confidence(p.power);
  if (p.compare_confidence) p.compare_confidence = clamp_confidence(*p.compare_confidence);
  if (p.max_latency_ratio && !(*p.max_latency_ratio > 1)) p.max_latency_ratio.reset();
  if (!(p.max_error_rate_ratio > 1)) p.max_error_rate_ratio = 2;
  return p;
}

VersionStats stats_of(const VersionWindow& w, std::uint64_t step_requests,
                      std::uint64_t step_errors) {
  VersionStats v;
  v.requests = w.requests;
  v.errors = std::min(w.errors, w.requests);
  v.slow = std::min(w.slow, w.requests);
  v.step_requests = step_requests;
  v.step_errors = step_errors;
  if (step_requests > 0)
    v.error_rate = static_cast<double>(step_errors) / static_cast<double>(step_requests);
  v.p99_seconds = w.p99_seconds;
  return v;
}

VersionCounts counts_of(const VersionWindow& w) {
  VersionCounts c;
  c.all = {w.requests, std::min(w.errors, w.requests)};
  c.half = {std::min(w.half_requests, w.requests),
            std::min({w.half_errors, w.half_requests, c.all.errors})};
  c.slow = std::min(w.slow, w.requests);
  c.latency = w.latency;
  return c;
}

EvidencePolicy evidence_policy(const config::Rollout& p) {
  EvidencePolicy e;
  e.max_error_rate_ratio = p.max_error_rate_ratio;
  e.max_error_rate = p.max_error_rate > 0 ? p.max_error_rate : std::nan("");
  e.judge_latency = p.max_p99_latency.has_value();
  e.relative = p.compare_to_stable;
  e.alpha = 1 - p.confidence;
  e.relative_alpha = 1 - p.compare_confidence.value_or(p.confidence);
  e.beta = 1 - p.power;
  e.max_latency_ratio = p.max_latency_ratio.value_or(std::nan(""));
  return e;
}

TestStats test_stats(const TestReading& r) {
  TestStats t;
  if (!r.active) return t;
  t.evidence = r.fail_log_e;
  t.bar = r.bar;
  t.pass_evidence = r.pass_log_lr;
  t.pass_bound = r.pass_bound;
  t.pass_factor = r.pass_factor;
  return t;
}

std::string number(double v) {
  return printf_string("%.3g", v);
}

}  // namespace

const char* to_string(RolloutState s) {
  switch (s) {
    case RolloutState::idle:
      return "idle";
    case RolloutState::progressing:
      return "progressing";
    case RolloutState::paused:
      return "paused";
    case RolloutState::promoted:
      return "promoted";
    case RolloutState::rolled_back:
      return "rolled_back";
  }
  return "unknown";
}

std::optional<RolloutState> parse_state(std::string_view s) {
  for (RolloutState st : {RolloutState::idle, RolloutState::progressing, RolloutState::paused,
                          RolloutState::promoted, RolloutState::rolled_back})
    if (s == to_string(st)) return st;
  return std::nullopt;
}

const char* to_string(Verdict v) {
  switch (v) {
    case Verdict::pass:
      return "pass";
    case Verdict::fail:
      return "fail";
    case Verdict::inconclusive:
      return "inconclusive";
    case Verdict::hold:
      return "hold";
  }
  return "unknown";
}

std::optional<Verdict> parse_verdict(std::string_view s) {
  for (Verdict v : {Verdict::pass, Verdict::fail, Verdict::inconclusive, Verdict::hold})
    if (s == to_string(v)) return v;
  return std::nullopt;
}

RolloutController::RolloutController(config::Rollout policy, std::uint32_t initial_weight_bp,
                                     TimePoint now)
    : p_(normalized(std::move(policy))) {
  s_.weight_bp = std::min(initial_weight_bp, kFull);
  begin_progress(now);
  s_.judge_from = now + p_.start_delay;
  s_.since = now;
  s_.reason = "rollout started at " + weight(s_.weight_bp) + " (step " +
              std::to_string(s_.step_index + 1) + " of " + std::to_string(p_.steps_bp.size()) + ")";
  if (p_.start_delay.count() > 0)
    s_.reason += "; judging starts after start_delay " +
                 printf_string("%gs", static_cast<double>(p_.start_delay.count()) / 1000);
}

RolloutController::RolloutController(config::Rollout policy, RolloutStatus restored)
    : p_(normalized(std::move(policy))), s_(std::move(restored)) {
  if (s_.state == RolloutState::promoted) s_.weight_bp = kFull;
  if (s_.state == RolloutState::rolled_back) s_.weight_bp = 0;
  s_.weight_bp = std::min(s_.weight_bp, kFull);
  if (s_.state == RolloutState::progressing && s_.weight_bp == 0) s_.weight_bp = p_.steps_bp[0];
  // The steps may have changed with a reload: evidence gathered for another step is void.
  const int step = step_for(s_.weight_bp);
  if (step != s_.step_index) {
    s_.step_index = step;
    reset_step();
  }
  while (s_.last.size() > kMaxJudgements) s_.last.pop_front();
}

std::uint32_t RolloutController::warmup_windows() const {
  const auto warmup = p_.step_warmup.value_or(p_.interval);
  if (warmup.count() <= 0 || p_.interval.count() <= 0) return 0;
  // Whole windows that cover it: 1.5 intervals is two windows.
  return static_cast<std::uint32_t>((warmup.count() + p_.interval.count() - 1) /
                                    p_.interval.count());
}

int RolloutController::step_for(std::uint32_t weight_bp) const {
  const auto& steps = p_.steps_bp;
  const auto it = std::lower_bound(steps.begin(), steps.end(), weight_bp);
  return static_cast<int>(it == steps.end() ? steps.size() - 1 : it - steps.begin());
}

void RolloutController::reset_step() {
  s_.consecutive_passes = 0;
  s_.consecutive_failures = 0;
  s_.step_windows = 0;
  s_.step_canary_requests = 0;
  s_.step_canary_errors = 0;
  s_.step_stable_requests = 0;
  s_.step_stable_errors = 0;
}

void RolloutController::reset_evidence() {
  s_.evidence = {};
  s_.holds = 0;
}

void RolloutController::begin_progress(TimePoint now) {
  // A canary at 0% gets no requests to judge: start it at the first step.
  if (s_.weight_bp == 0) s_.weight_bp = p_.steps_bp[0];
  s_.state = RolloutState::progressing;
  s_.step_index = step_for(s_.weight_bp);
  s_.judge_from = now;
  reset_step();
  reset_evidence();
}

void RolloutController::transition(TimePoint now, RolloutState state, std::uint32_t weight_bp,
                                   std::string reason, TickResult& out) {
  out.weight_changed = out.weight_changed || weight_bp != s_.weight_bp;
  out.state_changed = out.state_changed || state != s_.state;
  s_.state = state;
  s_.weight_bp = weight_bp;
  s_.step_index = step_for(weight_bp);
  s_.since = now;
  s_.reason = std::move(reason);
  out.transition_reason = s_.reason;
  reset_step();
}

RolloutController::TickResult RolloutController::tick(TimePoint now, const VersionWindow& canary,
                                                      const VersionWindow& stable) {
  TickResult out;
  if (s_.state != RolloutState::progressing || now < s_.judge_from) return out;
  ++s_.step_windows;
  const bool warmup = s_.step_windows <= warmup_windows();
  if (!warmup) {
    s_.step_canary_requests += canary.requests;
    s_.step_canary_errors += std::min(canary.errors, canary.requests);
    s_.step_stable_requests += stable.requests;
    s_.step_stable_errors += std::min(stable.errors, stable.requests);
  }

  Judgement j = judge(now, canary, stable, warmup);
  if (j.verdict == Verdict::hold) ++s_.holds;
  j.consecutive_passes = s_.consecutive_passes;
  j.consecutive_failures = s_.consecutive_failures;
  const bool step_up =
      j.verdict == Verdict::pass && s_.consecutive_passes >= p_.consecutive_successes;
  const bool roll_back = j.verdict == Verdict::fail && s_.consecutive_failures >= p_.failure_limit;
  if (p_.analyze_only && (step_up || roll_back)) {
    // Analysis only: say what the rollout would do, count afresh, keep the weight.
    j.reason += step_up ? "; analyze mode: would step up" : "; analyze mode: would roll back";
    s_.consecutive_passes = 0;
    s_.consecutive_failures = 0;
  }
  s_.last.push_back(j);
  while (s_.last.size() > kMaxJudgements) s_.last.pop_front();

  if (p_.analyze_only) {
    // nothing moves
  } else if (step_up) {
    advance(now, j, out);
  } else if (roll_back) {
    transition(now, RolloutState::rolled_back, 0,
               "rolled back after " + count(s_.consecutive_failures, "failure", "failures") +
                   " in a row at " + weight(j.weight_bp) + ": " + j.reason,
               out);
  }
  out.judgement = std::move(j);
  return out;
}

void RolloutController::advance(TimePoint now, const Judgement& j, TickResult& out) {
  const auto& steps = p_.steps_bp;
  const auto index = static_cast<std::size_t>(s_.step_index);
  const std::string why = count(s_.consecutive_passes, "pass", "passes") + " in a row at " +
                          weight(s_.weight_bp) + ": " + j.reason;
  auto step_name = [&](std::size_t i) {
    return "step " + std::to_string(i + 1) + " of " + std::to_string(steps.size()) + " (" +
           weight(steps[i]) + ")";
  };
  if (s_.weight_bp < steps[index])  // an operator put the weight between steps
    transition(now, RolloutState::progressing, steps[index], step_name(index) + " after " + why,
               out);
  else if (index + 1 >= steps.size())
    transition(now, RolloutState::promoted, kFull, "promoted after " + why, out);
  else
    transition(now, RolloutState::progressing, steps[index + 1],
               step_name(index + 1) + " after " + why, out);
}

Judgement RolloutController::judge(TimePoint now, const VersionWindow& canary,
                                   const VersionWindow& stable, bool warmup) {
  Judgement j;
  j.time = now;
  j.step_index = s_.step_index;
  j.weight_bp = s_.weight_bp;
  j.window = s_.step_windows;
  j.canary = stats_of(canary, s_.step_canary_requests, s_.step_canary_errors);
  j.stable = stats_of(stable, s_.step_stable_requests, s_.step_stable_errors);
  j.min_requests = p_.min_requests;
  j.max_error_rate = p_.max_error_rate;
  j.max_error_rate_ratio = p_.max_error_rate_ratio;
  j.confidence = p_.confidence;
  j.compare_confidence = p_.compare_confidence.value_or(p_.confidence);
  j.power = p_.power;
  j.compare_to_stable = p_.compare_to_stable;
  j.analyze_only = p_.analyze_only;
  if (p_.max_p99_latency)
    j.max_p99_seconds = std::chrono::duration<double>(*p_.max_p99_latency).count();
  j.max_latency_ratio = p_.max_latency_ratio.value_or(std::nan(""));
  j.warmup = warmup;

  // Evidence gathered against other limits (a reload changed them) does not carry over.
  const EvidencePolicy policy = evidence_policy(p_);
  const double max_rate = std::isnan(policy.max_error_rate) ? 0 : policy.max_error_rate;
  const double latency_ratio = p_.max_latency_ratio.value_or(0);
  if (s_.evidence.ratio != policy.max_error_rate_ratio || s_.evidence.max_error_rate != max_rate ||
      s_.evidence.latency_ratio != latency_ratio) {
    s_.evidence = {};
    s_.evidence.ratio = policy.max_error_rate_ratio;
    s_.evidence.max_error_rate = max_rate;
    s_.evidence.latency_ratio = latency_ratio;
  }
  CanaryEvidence evidence(policy, s_.evidence);
  const EvidenceReading r =
      evidence.add(counts_of(canary), counts_of(stable), s_.weight_bp / double(kFull), warmup);
  s_.evidence = evidence.state();
  j.dispersion = r.dispersion;
  if (p_.compare_to_stable) j.relative = test_stats(r.relative);
  if (!std::isnan(policy.max_error_rate)) j.absolute = test_stats(r.absolute);
  if (policy.judge_latency) j.latency = test_stats(r.latency);
  if (p_.max_latency_ratio) j.latency_ratio = test_stats(r.latency_ratio);
  j.rank_probability = r.rank_probability;
  j.canary_breach_p = r.canary_breach_p;
  j.stable_breach_p = r.stable_breach_p;

  const bool fail = r.relative.fail || r.absolute.fail || r.canary_breach || r.latency.fail ||
                    r.latency_ratio.fail;
  const bool over = r.relative.over || r.absolute.over || r.canary_breach || r.latency.over ||
                    r.latency_ratio.over;
  // The absolute route to a pass (errors too rare for the comparison, or no stable at 100%) is
  // open only while the comparison does not point to a regression: within max_error_rate is not
  // enough for a canary at 4x stable's rate.
  const bool relative_leans_bad =
      p_.compare_to_stable && r.relative.active && r.relative.pass_log_lr > 0;
  const bool errors_pass = r.relative.pass || (r.absolute.pass && !relative_leans_bad);
  const bool latency_pass =
      (!policy.judge_latency || r.latency.pass) && (!p_.max_latency_ratio || r.latency_ratio.pass);
  const bool enough = s_.step_canary_requests >= p_.min_requests;
  if (!errors_pass) j.requests_to_pass = r.requests_to_pass;

  // What was measured, then what decided.
  const std::string window = "canary " + fraction(j.canary.errors, j.canary.requests) +
                             " errors, stable " + fraction(j.stable.errors, j.stable.requests) +
                             " in this window";
  const std::string ratio_text = number(p_.max_error_rate_ratio) + "x stable's error rate";
  std::vector<std::string> fails;
  std::vector<std::string> notes;
  auto evidence_text = [](const TestReading& t) {
    return "evidence " + number(t.fail_log_e) + (t.over ? " >= " : " < ") + number(t.bar);
  };
  auto pass_text = [](const TestReading& t, const std::string& what) {
    return (t.pass ? "rules out " : "does not yet rule out ") + what + " (" +
           number(t.pass_log_lr) + (t.pass ? " <= " : " > ") + number(t.pass_bound) + ")";
  };
  if (r.relative.fail)
    fails.push_back("canary at " + ratio_text + " or worse (" + evidence_text(r.relative) +
                    ", this window agrees)");
  if (r.absolute.fail)
    fails.push_back("canary's error rate above max_error_rate " + rate(p_.max_error_rate) + " (" +
                    evidence_text(r.absolute) + ", this window agrees)");
  if (r.canary_breach)
    fails.push_back(
        "this window alone: canary " + fraction(j.canary.errors, j.canary.requests) +
        " above max_error_rate " + rate(p_.max_error_rate) + " (p=" + pvalue(r.canary_breach_p) +
        ")" +
        (std::isnan(r.stable_breach_p) ? " with no stable traffic to compare" : ", stable not"));
  if (r.latency.fail)
    fails.push_back("more than 1% of canary requests slower than max_p99_latency " +
                    millis(j.max_p99_seconds) + " (" + std::to_string(j.canary.slow) + "/" +
                    std::to_string(j.canary.requests) + " in this window; " +
                    evidence_text(r.latency) + ")");

  if (r.latency_ratio.fail)
    fails.push_back("canary's latency above max_latency_ratio " + number(j.max_latency_ratio) +
                    "x stable's (this window: a canary request / " + number(j.max_latency_ratio) +
                    " is slower than a stable one with probability " + number(j.rank_probability) +
                    "; " + evidence_text(r.latency_ratio) + ")");

  if (warmup)
    notes.push_back("warm-up after the weight change (window " + std::to_string(s_.step_windows) +
                    " of " + std::to_string(warmup_windows()) +
                    "): only a breach of max_error_rate is judged");
  if (p_.compare_to_stable && r.relative.active)
    notes.push_back("against stable: " + pass_text(r.relative, number(r.relative.pass_factor) +
                                                                   "x stable's error rate"));
  else if (p_.compare_to_stable)
    notes.push_back("no stable traffic to compare with yet");
  if (r.absolute.active) {
    const double limit_at_weight =
        r.absolute.pass_factor * p_.max_error_rate / p_.max_error_rate_ratio;
    notes.push_back("against max_error_rate: " +
                    pass_text(r.absolute, "an error rate of " + rate(limit_at_weight)));
  }
  if (policy.judge_latency)
    notes.push_back("latency: " +
                    pass_text(r.latency, "more than " + rate(r.latency.pass_factor * 0.01) +
                                             " of requests over max_p99_latency " +
                                             millis(j.max_p99_seconds)));
  if (p_.max_latency_ratio && r.latency_ratio.active)
    notes.push_back("latency against stable: " +
                    pass_text(r.latency_ratio, number(j.max_latency_ratio) + "x stable's latency") +
                    (std::isnan(j.rank_probability)
                         ? std::string()
                         : ", this window " + number(j.rank_probability) + " (0.5 at the limit)"));
  else if (p_.max_latency_ratio)
    notes.push_back("latency against stable: no window with latencies on both versions yet");
  if (r.dispersion > 1.05)
    notes.push_back("errors cluster: dispersion " + number(r.dispersion) + " (evidence counts 1/" +
                    number(r.dispersion) + " per error)");
  if (!enough)
    notes.push_back("the step has " + std::to_string(s_.step_canary_requests) +
                    " canary requests < min_requests " + std::to_string(p_.min_requests));
  if (!std::isnan(j.requests_to_pass)) {
    // What the operator waits for, and what the wait buys: a canary at the pass factor or worse
    // fails or keeps the step from passing with probability `power`.
    std::string more =
        "about " + printf_string("%.0f", std::ceil(j.requests_to_pass)) + " more canary requests";
    if (j.canary.requests > 0)
      more += " (" +
              printf_string(
                  "%.0f", std::ceil(j.requests_to_pass / static_cast<double>(j.canary.requests))) +
              " windows at this traffic)";
    notes.push_back(more + " to pass if the canary is as good as stable; by then a canary at " +
                    number(r.relative.pass_factor) + "x stable's error rate is caught with " +
                    printf_string("%g%%", p_.power * 100) + " probability");
  }

  if (fail) {
    j.verdict = Verdict::fail;
    j.reason = join(fails) + "; " + window;
  } else if (r.stable_breach) {
    j.verdict = Verdict::hold;
    j.reason = "holding: stable itself above max_error_rate " + rate(p_.max_error_rate) +
               " in this window (" + fraction(j.stable.errors, j.stable.requests) +
               ", p=" + pvalue(r.stable_breach_p) + "), not the canary's fault; " + window;
  } else {
    j.verdict =
        errors_pass && latency_pass && enough && !warmup ? Verdict::pass : Verdict::inconclusive;
    notes.push_back(window);
    j.reason = join(notes);
  }
  s_.consecutive_passes = j.verdict == Verdict::pass ? s_.consecutive_passes + 1 : 0;
  // A failure count lasts while a test stays over its bar.
  s_.consecutive_failures = j.verdict == Verdict::fail ? s_.consecutive_failures + 1
                                                       : (over ? s_.consecutive_failures : 0);
  return j;
}

RolloutController::TickResult RolloutController::pause(TimePoint now) {
  TickResult out;
  if (s_.state == RolloutState::paused) return out;
  if (s_.state != RolloutState::progressing) {
    out.error = std::string("cannot pause: the rollout is ") + to_string(s_.state);
    return out;
  }
  transition(now, RolloutState::paused, s_.weight_bp,
             "paused by operator at " + weight(s_.weight_bp), out);
  reset_evidence();
  return out;
}

RolloutController::TickResult RolloutController::resume(TimePoint now) {
  TickResult out;
  const RolloutState was = s_.state;
  if (was == RolloutState::progressing) return out;
  if (was == RolloutState::promoted || was == RolloutState::rolled_back) {
    out.error = std::string("cannot resume: the rollout is ") + to_string(was) +
                "; set a weight to start a new one";
    return out;
  }
  const std::uint32_t before = s_.weight_bp;
  begin_progress(now);
  // A new rollout from idle gets its warm-up again; a paused one just continues.
  if (was == RolloutState::idle) s_.judge_from = now + p_.start_delay;
  out.state_changed = true;
  out.weight_changed = s_.weight_bp != before;
  s_.since = now;
  s_.reason = std::string(was == RolloutState::idle ? "started" : "resumed") + " by operator at " +
              weight(s_.weight_bp) + " (step " + std::to_string(s_.step_index + 1) + " of " +
              std::to_string(p_.steps_bp.size()) + ")";
  out.transition_reason = s_.reason;
  return out;
}

RolloutController::TickResult RolloutController::promote(TimePoint now) {
  TickResult out;
  if (s_.state == RolloutState::promoted) return out;
  transition(now, RolloutState::promoted, kFull,
             std::string("promoted by operator (was ") + to_string(s_.state) + " at " +
                 weight(s_.weight_bp) + ")",
             out);
  return out;
}

RolloutController::TickResult RolloutController::abort(TimePoint now) {
  TickResult out;
  if (s_.state == RolloutState::rolled_back) return out;
  transition(now, RolloutState::rolled_back, 0,
             std::string("aborted by operator (was ") + to_string(s_.state) + " at " +
                 weight(s_.weight_bp) + ")",
             out);
  return out;
}

RolloutController::TickResult RolloutController::set_weight(std::uint32_t weight_bp,
                                                            TimePoint now) {
  TickResult out;
  if (weight_bp > kFull) {
    out.error = "weight must be between 0 and 100%, got " + weight(weight_bp);
    return out;
  }
  const std::string what = "weight set to " + weight(weight_bp) + " by operator";
  reset_evidence();
  switch (s_.state) {
    case RolloutState::progressing:
      if (weight_bp == 0)
        transition(now, RolloutState::idle, 0, what + ": rollout stopped (resume restarts it)",
                   out);
      else
        transition(now, RolloutState::progressing, weight_bp,
                   what + "; judging continues from there (step " +
                       std::to_string(step_for(weight_bp) + 1) + " of " +
                       std::to_string(p_.steps_bp.size()) + ")",
                   out);
      break;
    case RolloutState::paused:
    case RolloutState::idle:
      transition(now, s_.state, weight_bp, what, out);
      break;
    case RolloutState::promoted:
    case RolloutState::rolled_back:
      transition(
          now, RolloutState::idle, weight_bp,
          what + " after the rollout was " + to_string(s_.state) + "; resume starts a new rollout",
          out);
      break;
  }
  return out;
}

}  // namespace gp::routing
