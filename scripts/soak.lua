-- wrk script for scripts/soak: the readers of one 30-second interval.
--
--   wrk ... -s scripts/soak.lua URL -- <min-id> <max-id> <bearer-token> <delay-ms>
--
-- GET /api/4.0/async_status/{random id in min-id..max-id} with Authorization: Bearer <token>;
-- every id in that range exists (scripts/soak-load.py seeds them and nothing deletes them), so
-- the only expected answer is 200. Each connection waits <delay-ms> after every answer before
-- its next request (wrk's delay()), which keeps the load moderate: at most
-- connections * 1000 / (delay-ms + latency) requests per second.
--
-- done() prints one machine-readable line, "SOAK_RESULT key=value ...": answers by class
-- (200, 5xx, any other status), wrk's socket errors, latencies in microseconds.

threads = {}

local lo, hi, pause

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  lo = tonumber(args[1]) or error("soak.lua: needs <min-id> <max-id> <token> <delay-ms>")
  hi = tonumber(args[2]) or error("soak.lua: no max-id")
  wrk.headers["Authorization"] = "Bearer " .. (args[3] or error("soak.lua: no token"))
  pause = tonumber(args[4]) or 0
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
  ok, s5xx, other = 0, 0, 0
end

function request()
  return wrk.format("GET", "/api/4.0/async_status/" .. math.random(lo, hi))
end

function delay()
  return pause
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  elseif status >= 500 then
    s5xx = s5xx + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local n_ok, n_5xx, n_other = 0, 0, 0
  for _, t in ipairs(threads) do
    n_ok = n_ok + (t:get("ok") or 0)
    n_5xx = n_5xx + (t:get("s5xx") or 0)
    n_other = n_other + (t:get("other") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    "SOAK_RESULT requests=%d duration_us=%d ok=%d s5xx=%d other=%d p50_us=%.0f p99_us=%.0f "
      .. "max_us=%.0f connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, n_ok, n_5xx, n_other,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.timeout))
end
