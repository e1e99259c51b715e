-- wrk script: every request carries a different x-user-id (counter-based, per thread),
-- so the proxies' split sees a spread of keys; done() prints one machine-readable line.
local counter = 0
local prefix = "u"

function setup(thread)
  thread:set("id", tostring(math.random(1, 1000000)))
end

function init(args)
  prefix = "u" .. (id or "0") .. "-"
end

function request()
  counter = counter + 1
  wrk.headers["x-user-id"] = prefix .. counter
  return wrk.format()
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d max_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
