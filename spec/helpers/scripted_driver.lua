-- A scripted op driver for REST specs: installed with svc:set_driver, it answers each
-- request with the next scripted response and records every step (requests as the op
-- built them, sleeps with their lengths), moving a fake clock instead of sleeping.
--
--   local driver = scripted.install(svc, { { status = 503 }, { status = 202 } })
--   hub:send_to_all("t", {})
--   driver.requests[1].method, driver.sleeps[1], driver.steps (in order)
local M = {}

function M.install(svc, responses, start)
  local d = { requests = {}, sleeps = {}, steps = {}, clock = start or 1700000000, left = responses }
  svc:set_driver(function(op)
    local resp
    while true do
      local kind, a, b, c = op:step(d.clock, resp)
      resp = nil
      if kind == "request" then
        d.requests[#d.requests + 1] = a
        d.steps[#d.steps + 1] = "request"
        local r = table.remove(d.left, 1)
        assert(r, "the op sent more requests than scripted: " .. a.method .. " " .. a.url)
        if type(r) == "function" then r = r(a) end
        resp = r
      elseif kind == "sleep" then
        d.sleeps[#d.sleeps + 1] = a
        d.steps[#d.steps + 1] = "sleep"
        d.clock = d.clock + a
      elseif kind == "callback" then
        local ok, v, why = pcall(a)
        if ok and type(v) == "string" then op:feed(v) else op:feed(nil, tostring(ok and why or v)) end
      elseif kind == "done" then
        return a, b, c
      else -- failed
        return nil, a
      end
    end
  end)
  return d
end

return M
