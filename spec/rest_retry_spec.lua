-- Retry policy, driven by a scripted driver with a fake clock: which answers are retried
-- for which calls, backoff with jitter within its bounds, Retry-After, and the limits from
-- the service options. (Fault injection against the emulator: rest_emulator_spec.lua.)
local signalr = require "signalr"
local scripted = require "spec.helpers.scripted_driver"

local CS = "Endpoint=https://x.service.signalr.net;AccessKey=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG;Version=1.0;"

local function service(opts)
  local o = { connection_string = CS }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(signalr.new(o))
end

local function within(v, lo, hi)
  assert(v >= lo and v <= hi, ("%g is not within [%g, %g]"):format(v, lo, hi))
end

local function answers(...)
  local list = {}
  for _, a in ipairs({ ... }) do list[#list + 1] = type(a) == "number" and { status = a } or a end
  return list
end

describe("REST retries", function()
  it("retries a send answered 503: exponential backoff with +-20% jitter, then succeeds", function()
    local svc = service { retry_delay = 0.8, max_retries = 3 }
    local d = scripted.install(svc, answers(503, 503, 503, 202))
    assert.is_true(svc:hub("chat"):send_to_all("t", {}))
    assert.equal(4, #d.requests)
    assert.same({ "request", "sleep", "request", "sleep", "request", "sleep", "request" }, d.steps)
    within(d.sleeps[1], 0.64, 0.96)
    within(d.sleeps[2], 1.28, 1.92)
    within(d.sleeps[3], 2.56, 3.84)
  end)

  it("gives up after max_retries with a clear error that counts the attempts", function()
    local svc = service { retry_delay = 0.5, max_retries = 2 }
    local d = scripted.install(svc, answers(503, 503, 503))
    local r, err = svc:hub("chat"):send_to_all("t", {})
    assert.is_nil(r)
    assert.equal(3, #d.requests)
    assert.equal(2, #d.sleeps)
    assert.equal("service_error", err.kind)
    assert.equal(503, err.status)
    assert.equal("send_to_all: POST https://x.service.signalr.net/api/hubs/chat/:send answered 503 (after 3 attempts)",
      err.message)
  end)

  it("caps each wait at max_retry_delay", function()
    local svc = service { retry_delay = 0.8, max_retry_delay = 1, max_retries = 5 }
    local d = scripted.install(svc, answers(502, 502, 502, 502, 502, 202))
    assert.is_true(svc:hub("chat"):send_to_all("t", {}))
    within(d.sleeps[1], 0.64, 0.96)
    for i = 2, 5 do within(d.sleeps[i], 0, 1) end
    assert.is_true(d.sleeps[5] <= 1)
  end)

  it("does not retry with max_retries = 0", function()
    local svc = service { max_retries = 0 }
    local d = scripted.install(svc, answers(503))
    assert.is_nil(svc:hub("chat"):send_to_all("t", {}))
    assert.equal(1, #d.requests)
  end)

  it("honours Retry-After on 429 (seconds or an HTTP date) instead of the backoff", function()
    local svc = service { retry_delay = 0.8 }
    local d = scripted.install(svc, answers({ status = 429, headers = { ["retry-after"] = "7" } }, 202))
    assert.is_true(svc:hub("chat"):send_to_all("t", {}))
    assert.same({ 7 }, d.sleeps)
    -- an HTTP date 5 s after the driver's clock
    local date = os.date("!%a, %d %b %Y %H:%M:%S GMT", 1700000005)
    d = scripted.install(svc, answers({ status = 429, headers = { ["Retry-After"] = date } }, 202), 1700000000)
    assert.is_true(svc:hub("chat"):user_exists("u"))
    assert.same({ 5 }, d.sleeps)
    -- 429 without Retry-After: the backoff
    d = scripted.install(svc, answers(429, 202))
    assert.is_true(svc:hub("chat"):send_to_all("t", {}))
    within(d.sleeps[1], 0.64, 0.96)
  end)

  it("gives up at once when Retry-After is longer than max_retry_delay, reporting it", function()
    local svc = service { max_retry_delay = 10 }
    local d = scripted.install(svc, answers({ status = 429, headers = { ["retry-after"] = "30" } }))
    local r, err = svc:hub("chat"):send_to_all("t", {})
    assert.is_nil(r)
    assert.equal(1, #d.requests)
    assert.equal("throttled", err.kind)
    assert.equal(30, err.retry_after)
    assert.equal("the service is throttling: retry after 30 seconds", err.hint)
  end)

  it("retries messages only when the service certainly did not act; other calls on any 5xx, 408, timeouts", function()
    local svc = service { retry_delay = 0.1, max_retries = 1 }
    local hub = svc:hub("chat")
    local T = { error = "timeout", message = "timed out" }
    local R = { error = "reset", message = "Connection reset by peer" }
    local C = { error = "connect", message = "Connection refused" }
    local cases = {
      -- { call, first answer, retried? }
      { "send", 500, false }, { "send", 501, false }, { "send", 502, true }, { "send", 503, true },
      { "send", 504, true }, { "send", 408, false }, { "send", 429, true }, { "send", T, false },
      { "send", R, false }, { "send", C, true }, { "send", 400, false }, { "send", 401, false },
      { "send", 403, false }, { "send", 413, false },
      { "exists", 500, true }, { "exists", 501, true }, { "exists", 503, true }, { "exists", 408, true },
      { "exists", 429, true }, { "exists", T, true }, { "exists", R, true }, { "exists", C, true },
      { "exists", 400, false }, { "exists", 401, false }, { "exists", 403, false },
      { "group", 500, true }, { "close", 500, true }, { "close", R, true }, { "token", 500, true },
      { "invoke", 500, false }, { "invoke", 408, false }, { "invoke", 503, true },
      { "execute", 500, false }, { "execute", 503, true }, { "execute", T, false },
      { "list", 500, true }, { "list", T, true },
    }
    local calls = {
      send = function() return hub:send_to_user("u", "t", {}) end,
      exists = function() return hub:user_exists("u") end,
      group = function() return hub:add_user_to_group("u", "g") end,
      close = function() return hub:close_connection("c") end,
      token = function() return hub:generate_token() end,
      invoke = function() return hub:invoke("c", "t", {}) end,
      execute = function() return hub:execute({ { type = "JoinGroup", group = "g" } }) end,
      list = function() local it = hub:group_connections("g") return it() end,
    }
    local ok_body = { token = '{"token":"a.eyJleHAiOjF9.c"}', invoke = '{"result":1}',
      list = '{"value":[{"connectionId":"c"}]}' }
    for i, case in ipairs(cases) do
      local first = type(case[2]) == "number" and { status = case[2] } or case[2]
      local second = { status = 200, body = ok_body[case[1]] or "" }
      local d = scripted.install(svc, { first, second })
      local r = calls[case[1]]()
      local retried = #d.requests == 2
      assert(retried == case[3], ("case %d (%s, %s): retried = %s"):format(i, case[1],
        tostring(first.status or first.error), tostring(retried)))
      assert(retried == (r ~= nil and r ~= false), "case " .. i)
    end
  end)
end)
