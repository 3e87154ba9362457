-- wrk script for scripts/bench.
--
--   wrk ... -s scripts/bench.lua URL -- job <max-id> <bearer-token>
--       GET /api/4.0/async_status/{random id in 1..max-id} with Authorization: Bearer <token>
--   wrk ... -s scripts/bench.lua URL -- tojob <max-id> <mojolicious-cookie>
--       the same, authenticated by a Traffic Ops session cookie (database.layout = traffic_ops)
--   wrk ... -s scripts/bench.lua URL -- ping
--       GET /api/4.0/ping, no headers beyond wrk's own (the framework's ceiling)
--   wrk ... -s scripts/bench.lua URL -- create <bearer-token>
--       POST /api/4.0/async_status {"message":"bench"} with Authorization: Bearer <token>
--       (a producer starting jobs; scripts/bench-scale)
--
-- Both modes go through request() so that wrk's per-request Lua cost is the same in each.
-- done() prints one machine-readable line, "BENCH_RESULT key=value ...", that scripts/bench
-- parses: wrk's status error count is every response with a status above 399 (what its
-- summary calls "Non-2xx or 3xx responses"); latencies are in microseconds.

local mode, max_id, ping_request, create_request

function init(args)
  mode = args[1] or "ping"
  if mode == "job" then
    max_id = tonumber(args[2]) or error("bench.lua: job mode needs <max-id> <token>")
    wrk.headers["Authorization"] = "Bearer " .. (args[3] or error("bench.lua: no token"))
    math.randomseed(os.time())
  elseif mode == "tojob" then
    max_id = tonumber(args[2]) or error("bench.lua: tojob mode needs <max-id> <cookie>")
    wrk.headers["Cookie"] = "mojolicious=" .. (args[3] or error("bench.lua: no cookie"))
    math.randomseed(os.time())
  elseif mode == "ping" then
    ping_request = wrk.format("GET", "/api/4.0/ping")
  elseif mode == "create" then
    create_request = wrk.format("POST", "/api/4.0/async_status", {
      ["Authorization"] = "Bearer " .. (args[2] or error("bench.lua: create mode needs <token>")),
      ["Content-Type"] = "application/json",
    }, '{"message":"bench"}')
  else
    error("bench.lua: unknown mode " .. tostring(mode))
  end
end

function request()
  if mode == "job" or mode == "tojob" then
    return wrk.format("GET", "/api/4.0/async_status/" .. math.random(1, max_id))
  elseif mode == "create" then
    return create_request
  end
  return ping_request
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d bytes=%d p50_us=%.0f p90_us=%.0f p99_us=%.0f "
      .. "mean_us=%.1f max_us=%.0f status=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max,
    e.status, e.connect, e.read, e.write, e.timeout))
end
