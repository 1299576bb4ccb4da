-- wrk script of bench/e2e.py: every request carries one of the seeded session cookies, in turn,
-- and the run ends with one machine-readable line (latencies in microseconds).
-- usage: wrk ... -s e2e.lua URL -- COOKIES_FILE
local cookies = {}
local next_cookie = 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then cookies[#cookies + 1] = line end
  end
  assert(#cookies > 0, "no cookies in " .. args[1])
end

function request()
  next_cookie = next_cookie % #cookies + 1
  return wrk.format("GET", "/", {["Cookie"] = cookies[next_cookie]})
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'E2E {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "connect": %d, "read": %d, '
      .. '"write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
