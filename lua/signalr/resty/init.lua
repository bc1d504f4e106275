--- signalr.resty: the SDK inside OpenResty without blocking nginx's event loop.
-- Every operation that needs I/O (Entra tokens, temporary keys, REST calls) is a
-- sans-I/O op in the C core; here it is driven over cosockets (signalr.resty.http),
-- pauses use ngx.sleep, and time is ngx.now(). Negotiate with a cached key stays pure CPU.
--
--   -- init_worker_by_lua_block
--   local svc = assert(require("signalr.resty").new { connection_string = ... })
--   -- content_by_lua_block (or access/rewrite/timer: anywhere cosockets work)
--   local ok, err = svc:hub("chat"):send_to_all("newMessage", { "hi" })
--
-- TLS: cosockets verify against nginx's `lua_ssl_trusted_certificate` (and
-- `lua_ssl_verify_depth`); the `ca_file` option of signalr.new does not apply here.
local signalr = require "signalr"
local core = require "signalr.core"
local http = require "signalr.resty.http"

local ngx = ngx
local unpack = table.unpack or unpack -- luacheck: ignore 143

local _M = { _VERSION = "0.1.0" }

-- Phases in which cosockets are available.
local COSOCKET_PHASES = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true,
}

local function pack(...) return { n = select("#", ...), ... } end

--- Runs one op to completion over cosockets; returns the op's results or nil, err.
function _M.drive(op)
  local phase = ngx.get_phase()
  if not COSOCKET_PHASES[phase] then
    return nil, signalr.error {
      kind = "invalid_argument",
      message = "this call needs network I/O, which OpenResty does not allow in the '" .. phase ..
        "' phase; call it from a request handler or an ngx.timer",
    }
  end
  local response
  while true do
    local step = pack(op:step(ngx.now(), response))
    response = nil
    local kind = step[1]
    if kind == "request" then
      response = http.request(step[2])
    elseif kind == "sleep" then
      ngx.sleep(step[2])
    elseif kind == "callback" then
      local ok, value, why = pcall(step[2])
      if ok and type(value) == "string" then
        op:feed(value)
      else
        op:feed(nil, tostring(ok and (why or "the function did not return a string") or value))
      end
    elseif kind == "done" then
      return unpack(step, 2, step.n)
    else -- "failed"
      return nil, step[2]
    end
  end
end

local is_op = core.is_op
local wrap

-- One op's results in a batch's result shape: { ..., n =, err = <on failure> }.
local function batch_result(r)
  local count = r.n
  while count > 1 and r[count] == nil do count = count - 1 end
  local res = { n = count }
  for k = 1, count do res[k] = r[k] end
  if count == 2 and r[1] == nil then res.err = r[2] end
  return res
end

-- batch:run() under OpenResty: the ops come back to Lua and run on light threads, at most
-- max_in_flight at a time; results in queue order, as the libcurl batch gives them.
local function run_batch(ops)
  local results, n, next_i = {}, ops.n, 1
  local function worker()
    while next_i <= n do
      local i = next_i
      next_i = next_i + 1
      results[i] = batch_result(pack(_M.drive(ops[i])))
    end
  end
  local threads = {}
  for k = 1, math.min(ops.max_in_flight, n) do threads[k] = ngx.thread.spawn(worker) end
  for k = 1, #threads do ngx.thread.wait(threads[k]) end
  return results
end

-- A method's results: an op is driven here, in Lua (a cosocket cannot yield across the
-- C call a C-side driver would sit in); an op marked `again` only fetched what the method
-- needs (a temporary key), so the method runs again. Objects and iterators are wrapped.
local function finish(call, tries, ...)
  local first = ...
  if is_op(first) then
    local op = first
    local again = op:again()
    if not again then return _M.drive(op) end
    local res = pack(_M.drive(op))
    if res[1] == nil and res.n >= 2 then return nil, res[2] end
    if tries >= 2 then
      return nil, signalr.error { kind = "internal", message = "a prerequisite was fetched but is still missing" }
    end
    return finish(call, tries + 1, call())
  end
  local n = select("#", ...)
  if n == 1 and (type(first) == "userdata" or type(first) == "function") then return wrap(first) end
  if n == 1 and type(first) == "table" and first.signalr_ops then return run_batch(first) end
  return ...
end

-- A proxy whose methods finish their results as above.
function wrap(obj)
  if type(obj) == "function" then
    return function(...)
      local args = pack(...)
      return finish(function() return obj(unpack(args, 1, args.n)) end, 0, obj(...))
    end
  end
  local methods = {}
  return setmetatable({}, {
    __index = function(_, name)
      local m = methods[name]
      if m then return m end
      local v = obj[name]
      if type(v) ~= "function" then return v end
      m = function(_, ...)
        local args = pack(...)
        return finish(function() return v(obj, unpack(args, 1, args.n)) end, 0, v(obj, ...))
      end
      methods[name] = m
      return m
    end,
    __tostring = function() return tostring(obj) end,
    __close = function() if obj.close then obj:close() end end,
  })
end

--- signalr.new for OpenResty: the same object and methods, with every network call
-- made over cosockets.
function _M.new(opts)
  local svc, err = signalr.new(opts)
  if not svc then return nil, err end
  return _M.use(svc)
end

--- Wraps an existing service object so its network calls use cosockets.
function _M.use(svc)
  svc:return_ops(true)
  return wrap(svc)
end

return _M
