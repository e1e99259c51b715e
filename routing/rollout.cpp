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
  if (!(p.confidence >= 0.5)) p.confidence = 0.5;  // also NaN
  p.confidence = std::min(p.confidence, 0.9999);
  if (p.max_error_rate_increase) p.compare_to_stable = true;
  return p;
}

VersionStats stats_of(const VersionWindow& w, std::uint64_t step_requests,
                      std::uint64_t step_errors) {
  VersionStats v;
  v.requests = w.requests;
  v.errors = std::min(w.errors, w.requests);
  v.step_requests = step_requests;
  v.step_errors = step_errors;
  if (step_requests > 0)
    v.error_rate = static_cast<double>(step_errors) / static_cast<double>(step_requests);
  v.p99_seconds = w.p99_seconds;
  return v;
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
  }
  return "unknown";
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
  s_.pending_canary_requests = 0;
  s_.step_judgements = 0;
}

void RolloutController::begin_progress(TimePoint now) {
  // A canary at 0% gets no requests to judge: start it at the first step.
  if (s_.weight_bp == 0) s_.weight_bp = p_.steps_bp[0];
  s_.state = RolloutState::progressing;
  s_.step_index = step_for(s_.weight_bp);
  s_.judge_from = now;
  reset_step();
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
  s_.step_canary_requests += canary.requests;
  s_.step_canary_errors += std::min(canary.errors, canary.requests);
  s_.step_stable_requests += stable.requests;
  s_.step_stable_errors += std::min(stable.errors, stable.requests);
  s_.pending_canary_requests += canary.requests;

  Judgement j = judge(now, canary, stable);
  if (j.verdict == Verdict::pass) {
    ++s_.consecutive_passes;
    s_.consecutive_failures = 0;
  } else if (j.verdict == Verdict::fail) {
    ++s_.consecutive_failures;
    s_.consecutive_passes = 0;
  }
  j.consecutive_passes = s_.consecutive_passes;
  j.consecutive_failures = s_.consecutive_failures;
  s_.last.push_back(j);
  while (s_.last.size() > kMaxJudgements) s_.last.pop_front();

  if (j.verdict == Verdict::pass && s_.consecutive_passes >= p_.consecutive_successes) {
    advance(now, j, out);
  } else if (j.verdict == Verdict::fail && s_.consecutive_failures >= p_.failure_limit) {
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
                                   const VersionWindow& stable) {
  Judgement j;
  j.time = now;
  j.step_index = s_.step_index;
  j.weight_bp = s_.weight_bp;
  j.window = s_.step_windows;
  j.new_requests = s_.pending_canary_requests;
  j.canary = stats_of(canary, s_.step_canary_requests, s_.step_canary_errors);
  j.stable = stats_of(stable, s_.step_stable_requests, s_.step_stable_errors);
  j.min_requests = p_.min_requests;
  j.max_error_rate = p_.max_error_rate;
  j.confidence = p_.confidence;
  j.compare_to_stable = p_.compare_to_stable;
  j.max_error_rate_increase = p_.max_error_rate_increase.value_or(0);
  if (p_.max_p99_latency)
    j.max_p99_seconds = std::chrono::duration<double>(*p_.max_p99_latency).count();

  const std::uint64_t needed = std::max<std::uint64_t>(p_.min_requests, 1);
  if (s_.pending_canary_requests < needed) {
    j.verdict = Verdict::inconclusive;
    j.reason = "too few requests: " + std::to_string(s_.pending_canary_requests) +
               " canary requests since the last judgement < min_requests " + std::to_string(needed);
    return j;
  }
  s_.pending_canary_requests = 0;
  const double k = ++s_.step_judgements;
  j.judgement = s_.step_judgements;
  // Alpha spending: sum over k of alpha/(k(k+1)) = alpha, so a canary exactly at a limit is
  // failed at most with probability 1 - confidence per step, however long the step lasts.
  j.fail_below = (1 - p_.confidence) / (k * (k + 1));
  // The benefit of the doubt grows with the step: the first judgement passes when the observed
  // rate is within the limit, later ones unless it is above it with 1 - 1/(k+1) confidence.
  j.pass_from = 1 / (k + 1);

  const std::uint64_t n = s_.step_canary_requests;
  const std::uint64_t e = s_.step_canary_errors;
  j.error_rate_p_value = stats::binomial_tail(e, n, p_.max_error_rate);
  const stats::Bounds b = stats::exact_bounds(e, n, 1 - j.fail_below);
  j.error_rate_lower = b.lower;
  j.error_rate_upper = b.upper;

  std::vector<std::string> fails;
  std::vector<std::string> notes;
  std::string doubt;  // above the limit, not yet significant
  const std::string measured = "error rate " + rate(j.canary.error_rate) + " (" + fraction(e, n) +
                               ", judgement " + std::to_string(s_.step_judgements) +
                               " of this step)";
  const std::string test = "p=" + pvalue(j.error_rate_p_value);
  if (j.error_rate_p_value < j.fail_below)
    fails.push_back(measured + " > max_error_rate " + rate(p_.max_error_rate) + " (" + test +
                    " < " + pvalue(j.fail_below) + ", lower bound " + rate(b.lower) + ")");
  else if (j.error_rate_p_value < j.pass_from)
    doubt = measured + " may exceed max_error_rate " + rate(p_.max_error_rate) + " (" + test +
            ": neither < " + pvalue(j.fail_below) + " to fail nor >= " + pvalue(j.pass_from) +
            " to pass; lower bound " + rate(b.lower) + ")";
  else
    notes.push_back(measured + " within max_error_rate " + rate(p_.max_error_rate) + " (" + test +
                    " >= " + pvalue(j.pass_from) + ")");

  if (p_.compare_to_stable) {
    const std::uint64_t ns = s_.step_stable_requests;
    const std::uint64_t es = s_.step_stable_errors;
    if (ns == 0) {
      notes.push_back("no stable requests to compare with");  // e.g. at 100%
    } else {
      j.p_value = stats::two_proportion_p_value(e, n, es, ns, j.max_error_rate_increase);
      std::string stable_rate =
          "stable " + rate(j.stable.error_rate) + " (" + fraction(es, ns) + ")";
      if (j.max_error_rate_increase > 0)
        stable_rate += " + max_error_rate_increase " + rate(j.max_error_rate_increase);
      if (j.p_value < j.fail_below)
        fails.push_back("error rate " + rate(j.canary.error_rate) + " higher than " + stable_rate +
                        " (p=" + pvalue(j.p_value) + " < " + pvalue(j.fail_below) + ")");
      else
        notes.push_back("not shown higher than " + stable_rate + " (p=" + pvalue(j.p_value) +
                        " >= " + pvalue(j.fail_below) + ")");
    }
  }

  if (p_.max_p99_latency) {
    const std::string limit = "max_p99_latency " + millis(j.max_p99_seconds);
    if (std::isnan(canary.p99_seconds))
      notes.push_back("p99 unknown");
    else if (canary.requests < needed)
      notes.push_back("p99 not judged: " + std::to_string(canary.requests) +
                      " requests in this window");
    else if (canary.p99_seconds > j.max_p99_seconds)
      fails.push_back("p99 " + millis(canary.p99_seconds) + " > " + limit + " (stable " +
                      (std::isnan(stable.p99_seconds) ? "n/a" : millis(stable.p99_seconds)) + ")");
    else
      notes.push_back("p99 " + millis(canary.p99_seconds) + " <= " + limit);
  }

  if (!fails.empty()) {
    j.verdict = Verdict::fail;
    j.reason = join(fails);
  } else if (!doubt.empty()) {
    j.verdict = Verdict::inconclusive;
    notes.insert(notes.begin(), doubt);
    j.reason = join(notes);
  } else {
    j.verdict = Verdict::pass;
    j.reason = join(notes);
  }
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
