#include "proxy/status_page.hpp"

namespace gp::proxy {

namespace {

// Everything inline: the page must work offline and behind the admin listener alone. Text
// from the proxy (names, reasons) goes through textContent, never innerHTML.
constexpr std::string_view kPage = R"HTML(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>grayproxy status</title>
<style>
:root { --fg: #1d2330; --muted: #6b7385; --bg: #f5f6f8; --card: #fff; --line: #dde1e8;
        --stable: #2f6fdb; --canary: #e8730c; --ok: #2e9d4f; --bad: #d23a3a; --warn: #c98a00; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: var(--fg); background: var(--bg); }
header { display: flex; gap: 16px; align-items: baseline; padding: 14px 20px;
         background: #1d2330; color: #fff; }
header h1 { font-size: 18px; margin: 0; }
header .meta { color: #b9c0cf; font-size: 12px; }
#error { display: none; margin: 12px 20px; padding: 10px 14px; border-radius: 6px;
         background: #fde8e8; color: var(--bad); }
main { padding: 12px 20px 30px; display: grid; gap: 16px; }
.route { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
         padding: 14px 16px; }
.route h2 { font-size: 17px; margin: 0 8px 0 0; display: inline; }
.state { display: inline-block; padding: 1px 9px; border-radius: 10px; font-size: 12px;
         font-weight: 600; color: #fff; background: var(--muted); vertical-align: 2px; }
.state-progressing { background: var(--stable); }
.state-paused { background: var(--warn); }
.state-promoted { background: var(--ok); }
.state-rolled_back { background: var(--bad); }
.state-plain { background: #9aa1ae; }
.summary { margin: 6px 0 8px; color: var(--muted); }
.summary b { color: var(--fg); }
.progress { position: relative; display: flex; height: 22px; border-radius: 5px;
            overflow: hidden; background: #e9ecf1; border: 1px solid var(--line); }
.seg { position: relative; flex: 1; border-right: 1px solid #fff; }
.seg:last-child { border-right: 0; }
.seg .fill { position: absolute; left: 0; top: 0; bottom: 0; background: var(--canary); }
.seg.current { outline: 2px solid var(--fg); outline-offset: -2px; }
.seg .label { position: absolute; inset: 0; text-align: center; font-size: 11px;
              line-height: 20px; color: var(--fg); }
.reason { margin: 8px 0 4px; }
table { border-collapse: collapse; width: 100%; margin-top: 6px; font-size: 12px; }
th, td { text-align: left; padding: 3px 8px 3px 0; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
.verdict-pass { color: var(--ok); font-weight: 600; }
.verdict-fail { color: var(--bad); font-weight: 600; }
.verdict-inconclusive { color: var(--muted); font-weight: 600; }
.verdict-hold { color: var(--warn); font-weight: 600; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr));
          gap: 10px; margin-top: 10px; }
svg.chart { width: 100%; height: auto; background: #fbfbfc; border: 1px solid var(--line);
            border-radius: 6px; }
svg.chart text { font-size: 10px; fill: var(--muted); }
svg.chart text.title { font-size: 11px; font-weight: 600; fill: var(--fg); }
svg.chart .axis { stroke: var(--line); stroke-width: 1; }
svg.chart path.line { fill: none; stroke-width: 1.6; stroke-linejoin: round; }
svg.chart .stable { stroke: var(--stable); fill: var(--stable); }
svg.chart .canary { stroke: var(--canary); fill: var(--canary); }
.legend { font-size: 12px; color: var(--muted); margin-top: 6px; }
.legend span { display: inline-block; width: 10px; height: 3px; margin: 0 4px 3px 10px;
               vertical-align: middle; }
.empty { color: var(--muted); font-style: italic; }
</style>
</head>
<body>
<header><h1>grayproxy</h1><span class="meta" id="meta">loading&hellip;</span></header>
<div id="error"></div>
<main id="routes"><noscript>This page needs JavaScript; the same data is at
<a href="/status">/status</a> and <a href="/history">/history</a>.</noscript></main>
<script>
"use strict";
const REFRESH_MS = 5000;
const SVGNS = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) if (k != null) e.append(k);
  return e;
}
function sv(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}
function pct(v) {
  if (v == null) return "-";
  return (Math.round(v * 100) / 100) + "%";
}
function fmtRate(v) { return v == null ? "-" : (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + "/s"; }
function fmtRatio(v) {
  if (v == null) return "-";
  const p = v * 100;
  return (p >= 10 ? p.toFixed(0) : p >= 1 ? p.toFixed(1) : p.toFixed(2)) + "%";
}
function fmtSeconds(v) {
  if (v == null) return "-";
  return v >= 1 ? v.toFixed(2) + " s" : (v * 1000).toFixed(v >= 0.01 ? 0 : 1) + " ms";
}
function fmtTime(ms) { return new Date(ms).toLocaleTimeString(); }
function fmtAgo(sec) {
  return sec >= 3600 ? (sec / 3600).toFixed(1) + " h" : sec >= 120 ? Math.round(sec / 60) + " min"
                                                                    : Math.round(sec) + " s";
}

// The weight as a bar of one segment per rollout step (filled up to the live weight), or a
// single 0..100% segment for a route without steps.
function progressBar(weight, steps, stepIndex) {
  const bar = el("div", {"class": "progress", role: "progressbar", "aria-valuemin": "0",
                         "aria-valuemax": "100", "aria-valuenow": String(weight),
                         "aria-label": "canary weight " + pct(weight)});
  const bounds = steps && steps.length ? steps : [100];
  let prev = 0;
  bounds.forEach((step, i) => {
    const frac = weight >= step ? 1 : weight <= prev ? 0 : (weight - prev) / (step - prev);
    const seg = el("div", {"class": "seg" + (steps && steps.length && i === stepIndex ? " current" : ""),
                           title: "step " + (i + 1) + ": " + pct(step)});
    seg.append(el("div", {"class": "fill", style: "width:" + (frac * 100).toFixed(1) + "%"}));
    seg.append(el("div", {"class": "label"}, steps && steps.length ? pct(step) : pct(weight)));
    bar.append(seg);
    prev = step;
  });
  return bar;
}

function judgementsTable(js) {
  if (!js || !js.length) return el("div", {"class": "empty"}, "no judgements yet");
  const t = el("table", {"class": "judgements"});
  t.append(el("tr", {}, el("th", {}, "time"), el("th", {}, "verdict"), el("th", {}, "weight"),
              el("th", {}, "canary req / 5xx"), el("th", {}, "canary errors"),
              el("th", {}, "canary p99"), el("th", {}, "to pass"), el("th", {}, "reason")));
  for (const j of js.slice(-5).reverse()) {
    const c = j.canary || {};
    t.append(el("tr", {},
                el("td", {}, fmtTime(j.time_ms)),
                el("td", {"class": "verdict-" + j.verdict},
                   j.verdict + (j.warmup ? " (warm-up)" : "")),
                el("td", {}, pct(j.weight_percent)),
                el("td", {}, (c.requests ?? "-") + " / " + (c.errors ?? "-")),
                el("td", {}, fmtRatio(c.error_rate)),
                el("td", {}, fmtSeconds(c.p99_seconds)),
                el("td", {}, j.requests_to_pass == null ? "-"
                                 : "~" + Math.ceil(j.requests_to_pass) + " req"),
                el("td", {}, j.reason || "")));
  }
  return t;
}

// A line chart of one quantity for each version over [t0, t1]; nulls leave gaps.
function chart(title, versions, key, fmt, t0, t1) {
  const W = 320, H = 130, L = 46, R = 8, T = 18, B = 16;
  let max = 0;
  for (const name of ["stable", "canary"]) {
    const s = versions[name];
    if (!s) continue;
    s[key].forEach((v, i) => { if (v != null && s.time_ms[i] >= t0) max = Math.max(max, v); });
  }
  if (!(max > 0)) max = key === "error_ratio" ? 0.01 : key === "p99_seconds" ? 0.01 : 1;
  max *= 1.1;
  const x = t => L + (W - L - R) * (t - t0) / Math.max(1, t1 - t0);
  const y = v => T + (H - T - B) * (1 - v / max);
  const svg = sv("svg", {"class": "chart", viewBox: "0 0 " + W + " " + H, role: "img",
                         "aria-label": title, "data-metric": key});
  svg.append(sv("title", {}, title));
  svg.append(sv("text", {"class": "title", x: L, y: 12}, title));
  svg.append(sv("line", {"class": "axis", x1: L, y1: T, x2: L, y2: H - B}));
  svg.append(sv("line", {"class": "axis", x1: L, y1: H - B, x2: W - R, y2: H - B}));
  svg.append(sv("line", {"class": "axis", x1: L, y1: T, x2: W - R, y2: T,
                         "stroke-dasharray": "2 3"}));
  svg.append(sv("text", {x: L - 4, y: T + 4, "text-anchor": "end"}, fmt(max)));
  svg.append(sv("text", {x: L - 4, y: H - B, "text-anchor": "end"}, fmt(0)));
  svg.append(sv("text", {x: L, y: H - 3}, "-" + fmtAgo((t1 - t0) / 1000)));
  svg.append(sv("text", {x: W - R, y: H - 3, "text-anchor": "end"}, "now"));
  for (const name of ["stable", "canary"]) {
    const s = versions[name];
    if (!s) continue;
    let d = "", pen = false, n = 0, last = null;
    s[key].forEach((v, i) => {
      const t = s.time_ms[i];
      if (v == null || t < t0) { pen = false; return; }
      const px = x(t).toFixed(1), py = y(v).toFixed(1);
      d += (pen ? "L" : "M") + px + " " + py + " ";
      pen = true; n++; last = [px, py];
    });
    if (!n) continue;
    svg.append(sv("path", {"class": "line " + name, d: d.trim(), "data-version": name,
                           "data-points": String(n)}));
    svg.append(sv("circle", {"class": name, cx: last[0], cy: last[1], r: 2}));
  }
  return svg;
}

function routeCard(r, hist, nowMs) {
  const ro = r.rollout;
  const state = ro ? ro.state : "plain";
  const steps = r.steps_percent || [];
  const card = el("section", {"class": "route", id: "route-" + r.name, "data-route": r.name,
                              "data-state": state});
  card.append(el("h2", {}, r.name), el("span", {"class": "state state-" + state}, state));
  const sum = el("div", {"class": "summary"});
  if (r.canary) {
    sum.append("canary weight ", el("b", {"class": "weight"}, pct(r.weight_percent)));
    if (steps.length && ro)
      sum.append(" \u00b7 step ", el("b", {}, (ro.step_index + 1) + "/" + steps.length));
    sum.append(" \u00b7 " + r.stable + " \u2192 " + r.canary);
  } else {
    sum.append("plain route to " + r.stable);
  }
  card.append(sum);
  if (r.canary) card.append(progressBar(r.weight_percent, steps, ro ? ro.step_index : -1));
  if (ro && ro.reason)
    card.append(el("div", {"class": "reason"}, "last transition: " + ro.reason +
                                                (ro.since_ms ? " (" + fmtTime(ro.since_ms) + ")" : "")));
  if (ro && ro.judgements) card.append(judgementsTable(ro.judgements));
  const charts = el("div", {"class": "charts"});
  const versions = (hist && hist.versions) || {};
  let first = nowMs;
  for (const s of Object.values(versions)) if (s.time_ms.length) first = Math.min(first, s.time_ms[0]);
  const t1 = nowMs;
  const t0 = Math.max(t1 - 3600 * 1000, Math.min(first, t1 - 60 * 1000));
  if (Object.values(versions).some(s => s.time_ms.length)) {
    charts.append(chart("request rate", versions, "rate", fmtRate, t0, t1),
                  chart("error ratio (5xx)", versions, "error_ratio", fmtRatio, t0, t1),
                  chart("p99 latency", versions, "p99_seconds", fmtSeconds, t0, t1));
    card.append(charts);
    const legend = el("div", {"class": "legend"});
    legend.append(el("span", {style: "background:var(--stable)"}), "stable");
    if (versions.canary) legend.append(el("span", {style: "background:var(--canary)"}), "canary");
    legend.append(" \u00b7 one point per " + (hist.period_seconds || 10) + " s");
    card.append(legend);
  } else {
    card.append(el("div", {"class": "empty charts"}, "collecting history\u2026"));
  }
  return card;
}

async function refresh() {
  const errBox = document.getElementById("error");
  try {
    const [st, hi] = await Promise.all([
      fetch("/status", {cache: "no-store"}).then(r => { if (!r.ok) throw new Error("/status: HTTP " + r.status); return r.json(); }),
      fetch("/history", {cache: "no-store"}).then(r => { if (!r.ok) throw new Error("/history: HTTP " + r.status); return r.json(); })]);
    const byName = {};
    for (const h of hi.routes || []) byName[h.name] = h;
    const main = document.getElementById("routes");
    main.replaceChildren(...(st.routes || []).map(r => routeCard(r, byName[r.name], hi.now_ms)));
    if (!(st.routes || []).length) main.append(el("div", {"class": "empty"}, "no routes"));
    document.getElementById("meta").textContent =
        "version " + st.version + (st.draining ? " \u00b7 DRAINING" : "") +
        " \u00b7 updated " + fmtTime(Date.now());
    errBox.style.display = "none";
    document.body.dataset.loaded = "1";
  } catch (e) {
    errBox.textContent = "cannot refresh: " + e.message;
    errBox.style.display = "block";
  }
}
refresh();
setInterval(refresh, REFRESH_MS);
</script>
</body>
</html>
)HTML";

}  // namespace

std::string_view status_page_html() {
  return kPage;
}

std::string_view status_page_csp() {
  return "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
         "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
         "frame-ancestors 'none'";
}

}  // namespace gp::proxy
