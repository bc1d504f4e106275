-- rest.lua: REST sends per second through the SDK against a local server answering 202.
--   rest.lua ENDPOINT SECONDS            hub:send_to_all, one call at a time
--   rest.lua ENDPOINT SECONDS N          svc:batch{ max_in_flight = N } of sends, run again and again
-- Prints "<sends per second>". Every send signs its own access-key JWT, as in production.
local signalr = require "signalr"
local monotime = require("cqueues").monotime -- a wall clock: sends wait on the network

local endpoint, seconds, in_flight = arg[1], tonumber(arg[2]) or 2, tonumber(arg[3])
local svc = assert(signalr.new {
  connection_string = "Endpoint=" .. endpoint .. ";AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg;Version=1.0;",
  max_retries = 0,
})
local hub = svc:hub("bench")
local args = { "alice", "hello" }
assert(hub:send_to_all("newMessage", args))

-- BENCH_COUNT=n: exactly n sends whatever the time (for instruction counts)
local fixed = tonumber(os.getenv("BENCH_COUNT"))
local count, start = 0, monotime()
local t = start
if not in_flight then
  while (fixed and count < fixed) or (not fixed and t - start < seconds) do
    for _ = 1, 100 do
      local ok, err = hub:send_to_all("newMessage", args)
      if not ok then error(tostring(err)) end
    end
    count = count + 100
    t = monotime()
  end
else
  -- Runs of many calls, so the tail of each run (fewer than N in flight) weighs little.
  local per_run = math.max(2000, in_flight * 50)
  local batch = svc:batch { max_in_flight = in_flight }
  local bhub = batch:hub("bench")
  while (fixed and count < fixed) or (not fixed and t - start < seconds) do
    for _ = 1, per_run do bhub:send_to_all("newMessage", args) end
    for i, r in ipairs(batch:run()) do
      if not r[1] then error("call " .. i .. ": " .. tostring(r.err)) end
    end
    count = count + per_run
    t = monotime()
  end
end
print(string.format("%.0f", count / (t - start)))
