-- lua-http listeners: turns each stream into a plain request table, routes it, applies
-- injected faults, writes the response table back, counts it and logs one line.
local cqueues = require "cqueues"
local http_server = require "http.server"
local http_headers = require "http.headers"
local http_websocket = require "http.websocket"
local json = require "signalr.emulator.json"

local monotime = cqueues.monotime
local concat, insert = table.concat, table.insert
local format = string.format

local M = {}

M.BODY_LIMIT = 1024 * 1024       -- the service refuses bodies over 1 MB
M.HEADER_LIMIT = 16 * 1024       -- and request headers over 16 KB

local function percent_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end
M.percent_decode = percent_decode

function M.percent_encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return format("%%%02X", c:byte()) end))
end

-- Query string -> { lower-case name = { value, ... } } (ASP.NET semantics: names are
-- case-insensitive, '+' is a space, repeated names collect every value).
function M.parse_query(raw)
  local query = {}
  if not raw or raw == "" then return query end
  for pair in raw:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k = percent_decode((k:gsub("%+", " "))):lower()
    v = percent_decode((v:gsub("%+", " ")))
    local list = query[k]
    if not list then list = {}; query[k] = list end
    list[#list + 1] = v
  end
  return query
end

-- Raw path -> list of percent-decoded segments (the leading "/" gives no segment).
local function split_path(raw_path)
  local segments = {}
  for seg in raw_path:gmatch("/([^/]*)") do
    segments[#segments + 1] = percent_decode(seg)
  end
  -- "/a/" -> { "a", "" }: keep the empty trailing segment so "/a/" and "/a" differ.
  return segments
end
M.split_path = split_path

-------------------------------------------------------------------------------
-- Router: templates like "/api/hubs/{hub}/users/{user}/:send".

local Router = {}
Router.__index = Router

local function compile(template)
  local parts = {}
  for seg in template:gmatch("/([^/]*)") do
    local name = seg:match("^{([%w_]+)}$")
    parts[#parts + 1] = name and { capture = name } or { literal = seg }
  end
  return parts
end

function M.router(routes)
  local self = setmetatable({ routes = {} }, Router)
  for _, r in ipairs(routes or {}) do self:add(r) end
  return self
end

function Router:add(route)
  assert(type(route.template) == "string" and type(route.handler) == "function", "bad route")
  local methods = type(route.method) == "table" and route.method or { route.method }
  local set = {}
  for _, m in ipairs(methods) do set[m] = true end
  insert(self.routes, { template = route.template, methods = set, handler = route.handler,
    parts = compile(route.template), name = route.name, websocket = route.websocket,
    no_faults = route.no_faults, raw = route })
end

-- Returns route, params | nil, allowed_methods (a list when the path matched another method).
function Router:match(method, segments)
  local best, best_params, best_score
  local allowed = {}
  for _, r in ipairs(self.routes) do
    local parts = r.parts
    if #parts == #segments then
      local params, score, ok = {}, {}, true
      for i, p in ipairs(parts) do
        if p.literal then
          if p.literal ~= segments[i] then ok = false; break end
          score[i] = 1
        else
          if segments[i] == "" then ok = false; break end
          params[p.capture] = segments[i]
          score[i] = 0
        end
      end
      if ok then
        if r.methods[method] then
          -- prefer the template whose first differing segment is a literal
          local better = not best
          if best then
            for i = 1, #score do
              if score[i] ~= best_score[i] then better = score[i] > best_score[i]; break end
            end
          end
          if better then best, best_params, best_score = r, params, score end
        else
          for m in pairs(r.methods) do allowed[#allowed + 1] = m end
        end
      end
    end
  end
  if best then return best, best_params end
  table.sort(allowed)
  return nil, allowed
end

-------------------------------------------------------------------------------
-- Counters: requests by "METHOD template" and status.

local Counters = {}
Counters.__index = Counters

function M.counters()
  return setmetatable({ routes = {} }, Counters)
end

function Counters:add(key, status)
  local by_status = self.routes[key]
  if not by_status then by_status = {}; self.routes[key] = by_status end
  status = tostring(status)
  by_status[status] = (by_status[status] or 0) + 1
end

function Counters:snapshot()
  local copy = {}
  for k, v in pairs(self.routes) do
    local c = {}
    for s, n in pairs(v) do c[s] = n end
    copy[k] = c
  end
  return { routes = copy }
end

function Counters:reset()
  self.routes = {}
end

-------------------------------------------------------------------------------
-- Faults: rules matched by route template (or "*"), method, and listener/resource name.

local Faults = {}
Faults.__index = Faults

local FAULT_KINDS = { delay = true, status = true, throttle = true, reset = true }

function M.faults()
  return setmetatable({ rules = {}, next_id = 1 }, Faults)
end

local function is_int(v, lo, hi)
  return math.type(v) == "integer" and v >= lo and (not hi or v <= hi)
end

function Faults:add(rule)
  if type(rule) ~= "table" then return nil, "a fault must be a JSON object" end
  if not FAULT_KINDS[rule.kind] then
    return nil, "kind must be one of delay, status, throttle, reset"
  end
  if type(rule.route) ~= "string" or rule.route == "" then
    return nil, "route must be a route template (e.g. \"/api/hubs/{hub}/:send\") or \"*\""
  end
  if rule.method ~= nil and type(rule.method) ~= "string" then return nil, "method must be a string" end
  if rule.resource ~= nil and type(rule.resource) ~= "string" then return nil, "resource must be a string" end
  if rule.count ~= nil and not is_int(rule.count, 1) then return nil, "count must be an integer >= 1" end
  if rule.delay ~= nil and (type(rule.delay) ~= "number" or rule.delay < 0 or rule.delay > 300) then
    return nil, "delay must be a number of seconds between 0 and 300"
  end
  if rule.kind == "delay" and rule.delay == nil then return nil, "a delay fault needs delay" end
  if rule.kind == "status" and not is_int(rule.status, 100, 599) then
    return nil, "a status fault needs status (100-599)"
  end
  if rule.status ~= nil and not is_int(rule.status, 100, 599) then return nil, "status must be 100-599" end
  if rule.retry_after ~= nil and not is_int(rule.retry_after, 0) then
    return nil, "retry_after must be an integer >= 0"
  end
  if rule.body ~= nil and type(rule.body) ~= "string" and type(rule.body) ~= "table" then
    return nil, "body must be a string or a JSON object"
  end
  local id = tostring(self.next_id)
  self.next_id = self.next_id + 1
  local r = { id = id, route = rule.route, method = rule.method and rule.method:upper(),
    resource = rule.resource, kind = rule.kind, delay = rule.delay, status = rule.status,
    retry_after = rule.retry_after, body = rule.body, count = rule.count, hits = 0 }
  insert(self.rules, r)
  return r
end

function Faults:list()
  return self.rules
end

function Faults:clear()
  self.rules = {}
end

-- Takes (and consumes one use of) the first rule matching this request.
function Faults:take(method, template, listener_name)
  for i, r in ipairs(self.rules) do
    if (r.route == "*" or r.route == template)
      and (not r.method or r.method == method)
      and (not r.resource or r.resource == listener_name) then
      r.hits = r.hits + 1
      if r.count then
        r.count = r.count - 1
        if r.count <= 0 then table.remove(self.rules, i) end
      end
      return r
    end
  end
end

-------------------------------------------------------------------------------
-- Responses

function M.json(status, value, headers)
  local h = headers or {}
  h["content-type"] = "application/json; charset=utf-8"
  return { status = status, headers = h, body = json.encode(value) }
end

-- Error body in the data-plane shape: {code, message, target, details}.
function M.error(status, code, message, target, extra_headers)
  local h = extra_headers or {}
  return M.json(status, { code = code, message = message, target = target or json.null,
    details = json.array() }, h)
end

local REASONS = {
  [400] = "BadRequest", [401] = "Unauthorized", [403] = "Forbidden", [404] = "NotFound",
  [405] = "MethodNotAllowed", [408] = "RequestTimeout", [413] = "PayloadTooLarge",
  [429] = "TooManyRequests", [431] = "RequestHeaderFieldsTooLarge", [500] = "InternalServerError",
  [502] = "BadGateway", [503] = "ServiceUnavailable", [504] = "GatewayTimeout",
}

local function fault_response(rule)
  local status = rule.kind == "throttle" and (rule.status or 429) or rule.status
  local headers = {}
  if rule.kind == "throttle" or rule.retry_after then
    headers["retry-after"] = tostring(rule.retry_after or 1)
  end
  if type(rule.body) == "string" then
    headers["content-type"] = "text/plain; charset=utf-8"
    return { status = status, headers = headers, body = rule.body }
  elseif type(rule.body) == "table" then
    return M.json(status, rule.body, headers)
  end
  return M.error(status, REASONS[status] or "InjectedFault",
    "Fault injected by the emulator's admin API.", nil, headers)
end

-------------------------------------------------------------------------------
-- Reading a request

local function header_table(headers)
  local t, size = {}, 0
  for name, value in headers:each() do
    size = size + #name + #value + 4
    if name:sub(1, 1) ~= ":" then
      if t[name] then t[name] = t[name] .. ", " .. value else t[name] = value end
    end
  end
  return t, size
end

-- Reads at most `limit` bytes of body; returns body | nil, "too_large" | nil, err.
local function read_body(stream, headers, limit, timeout)
  local declared = headers:get("content-length")
  if declared then
    local n = tonumber(declared)
    if not n or n < 0 then return nil, "bad_length" end
    if n > limit then return nil, "too_large" end
  end
  local expect = headers:get("expect")
  if expect and expect:lower() == "100-continue" then
    -- clients (lua-http, curl) hold large bodies back until told to go on
    local ok = stream:write_continue(timeout)
    if not ok then return nil, "read_failed" end
  end
  local parts, total = {}, 0
  local deadline = monotime() + timeout
  while true do
    local chunk, err = stream:get_next_chunk(deadline - monotime())
    if chunk == nil then
      if err == nil then break end
      return nil, "read_failed"
    end
    total = total + #chunk
    if total > limit then return nil, "too_large" end
    parts[#parts + 1] = chunk
  end
  return concat(parts)
end

local function is_loopback(addr)
  if type(addr) ~= "string" then return false end
  return addr:match("^127%.") ~= nil or addr == "::1" or addr:match("^::ffff:127%.") ~= nil
end
M.is_loopback = is_loopback

-------------------------------------------------------------------------------
-- Server

local Server = {}
Server.__index = Server

-- opts: log (function(line)), counters, faults, body_limit
function M.new(opts)
  return setmetatable({
    log = opts.log or function() end,
    counters = opts.counters or M.counters(),
    faults = opts.faults or M.faults(),
    body_limit = opts.body_limit or M.BODY_LIMIT,
    listeners = {},
    on_error = opts.on_error,
  }, Server)
end

local function write_response(stream, req_method, res)
  local h = http_headers.new()
  h:append(":status", tostring(res.status))
  local body = res.body or ""
  for k, v in pairs(res.headers or {}) do h:append(k, v) end
  if req_method == "HEAD" or res.status == 204 or res.status == 304 then
    if req_method == "HEAD" and body ~= "" and not h:has("content-length") then
      h:append("content-length", tostring(#body))
    end
    return stream:write_headers(h, true, 10)
  end
  h:upsert("content-length", tostring(#body))
  local ok, err = stream:write_headers(h, body == "", 10)
  if ok and body ~= "" then ok, err = stream:write_chunk(body, true, 10) end
  return ok, err
end

-- Ends a stream whose request body will not be read: shut the socket and mark the stream
-- closed, so lua-http does not try to drain it (its drain loop spins on a dead peer).
local function abort(stream)
  local sock = stream.connection and stream.connection.socket
  if sock then sock:shutdown() end
  if stream.state ~= "closed" then stream:set_state("closed") end
end

local function new_request(listener, stream, headers)
  local method = headers:get(":method") or "?"
  local target = headers:get(":path") or "/"
  local raw_path, raw_query = target:match("^([^?#]*)%??([^#]*)")
  raw_path = raw_path or "/"
  local hdrs, header_size = header_table(headers)
  local segments = split_path(raw_path)
  local authority = headers:get(":authority") or hdrs.host or listener.authority_host
  local req = {
    method = method, raw_path = raw_path, raw_query = raw_query or "",
    query = M.parse_query(raw_query), headers = hdrs, path = "/" .. concat(segments, "/"),
    scheme = listener.tls and "https" or "http", host = authority, port = listener.port,
    listener = listener.name, resource = listener.resource, params = {},
  }
  req.url = req.scheme .. "://" .. (authority or "") .. raw_path ..
    ((raw_query and raw_query ~= "") and ("?" .. raw_query) or "")
  local _, peer = stream:peername()
  req.peer = peer
  req.loopback = is_loopback(peer)
  return req, segments, header_size
end

-- Calls the route's handler; returns a response table (500 when the handler fails).
function Server:call(route, req)
  local ok, out = xpcall(route.handler, debug.traceback, req)
  if not ok then
    self.log(format("error: handler for %s %s failed: %s", req.method, route.template,
      (tostring(out):gsub("\n", " | "))))
    return M.error(500, "InternalServerError", "The emulator failed to handle this request.")
  elseif type(out) ~= "table" then
    return M.error(500, "InternalServerError", "The handler returned no response.")
  end
  return out
end

-- Handles one stream: reads the whole body first (bounded), then faults, routing and the
-- handler. Returns the status written (a number, or "reset" / "aborted").
function Server:handle(listener, stream)
  local started = monotime()
  local headers = stream:get_headers(15)
  if not headers then return end
  local req, segments, header_size = new_request(listener, stream, headers)
  local method = req.method
  local route, params = listener.router:match(method, segments)
  local route_key = route and (route.name or (method .. " " .. route.template)) or (method .. " *")
  local res, status

  local body, berr = read_body(stream, headers, self.body_limit, 30)
  local fault = route and not route.no_faults and self.faults:take(method, route.template, listener.name)
  if fault and fault.delay and fault.delay > 0 then cqueues.sleep(fault.delay) end

  if not body and berr == "too_large" then
    res = M.error(413, "PayloadTooLarge", "Request body exceeds the 1 MB limit.", nil, { connection = "close" })
  elseif not body and berr == "bad_length" then
    res = M.error(400, "BadRequest", "Invalid Content-Length header.", nil, { connection = "close" })
  elseif not body then
    status = "aborted"
  elseif header_size > M.HEADER_LIMIT then
    res = M.error(431, "RequestHeaderFieldsTooLarge", "Request headers exceed 16 KB.")
  elseif fault and fault.kind == "reset" then
    status = "reset"
  elseif fault and fault.kind ~= "delay" then
    res = fault_response(fault)
  elseif not route then
    if #params > 0 then
      res = M.error(405, "MethodNotAllowed", "Method " .. method .. " is not allowed on this path.",
        nil, { allow = concat(params, ", ") })
    else
      res = M.error(404, "NotFound", "No route matches this path.")
    end
  else
    req.params, req.route, req.body = params, route.template, body
    local out = self:call(route, req)
    if out.websocket then
      local ws, werr = http_websocket.new_from_stream(stream, headers)
      if not ws then
        res = M.error(400, "BadRequest", "WebSocket upgrade failed: " .. tostring(werr))
      else
        local accepted = ws:accept({ headers = out.upgrade_headers }, 10)
        status = accepted and 101 or "aborted"
        self:record(listener, method, req.raw_path, route_key, status, started)
        if accepted then out.websocket(ws) end
        return status
      end
    else
      res = out
    end
  end

  if res then
    status = res.status
    local ok = write_response(stream, method, res)
    if not ok or (res.headers and res.headers.connection == "close") then abort(stream) end
  else
    abort(stream)
  end
  self:record(listener, method, req.raw_path, route_key, status, started)
  return status
end

-- One log line per request: no query, no header values, no body.
function Server:record(listener, method, raw_path, route_key, status, started)
  self.counters:add(route_key, status)
  self.log(format("%s %s port=%d %s %s %s %.1fms", os.date("!%Y-%m-%dT%H:%M:%SZ"),
    listener.name, listener.port or 0, method, raw_path, tostring(status),
    (monotime() - started) * 1000))
end

local function alpn_http11(_, protos)
  for _, p in ipairs(protos) do
    if p == "http/1.1" then return p end
  end
  return nil
end

-- Opens one listener. spec: name, host(s) (list of addresses to bind), port, tls_ctx|nil,
-- routes (router), resource (optional). Returns listener | nil, err.
function Server:listen(spec)
  local listener = { name = spec.name, port = spec.port, tls = spec.tls_ctx ~= nil,
    router = spec.router, resource = spec.resource, servers = {}, authority_host = spec.authority_host }
  if spec.tls_ctx and spec.tls_ctx.setAlpnSelect then
    spec.tls_ctx:setAlpnSelect(alpn_http11)
  end
  local addresses = spec.addresses
  for i, addr in ipairs(addresses) do
    local srv, err = http_server.listen {
      host = addr, port = listener.port, v6only = addr:find(":", 1, true) and true or nil,
      reuseaddr = true, tls = spec.tls_ctx ~= nil, ctx = spec.tls_ctx, version = 1.1,
      onstream = function(_, stream)
        local ok, e = xpcall(self.handle, debug.traceback, self, listener, stream)
        if not ok then self.log("error: stream failed: " .. tostring(e):gsub("\n", " | ")) end
      end,
      onerror = function(_, _, op, err)
        -- client-side noise (resets, failed TLS handshakes) must never stop the listener
        if op == "wrap" or op == "get_next_incoming_stream" then return end
        self.log("error: " .. tostring(op) .. ": " .. tostring(err))
      end,
    }
    if srv then
      -- cqueues reads lines of at most 4 KB by default; Azure takes 16 KB of headers and
      -- request lines carry access_token (up to 4 KB) in the query
      local add_socket = srv.add_socket
      srv.add_socket = function(s, socket)
        socket:setmaxline(M.HEADER_LIMIT + 1024)
        return add_socket(s, socket)
      end
      local ok, lerr = srv:listen()
      if ok then
        if listener.port == 0 or listener.port == nil then
          local _, _, port = srv:localname()
          listener.port = port
        end
        insert(listener.servers, srv)
      elseif i == 1 or not spec.optional_extra then
        return nil, format("cannot listen on %s port %s: %s", addr, tostring(listener.port), tostring(lerr))
      end
    elseif i == 1 or not spec.optional_extra then
      return nil, format("cannot listen on %s port %s: %s", addr, tostring(listener.port), tostring(err))
    end
  end
  insert(self.listeners, listener)
  return listener
end

-- Runs every listener inside controller `cq`.
function Server:attach(cq)
  for _, listener in ipairs(self.listeners) do
    for _, srv in ipairs(listener.servers) do
      cq:wrap(function()
        local ok, err = srv:loop()
        if not ok and not self.closing then self.log("error: listener loop: " .. tostring(err)) end
      end)
    end
  end
end

function Server:close()
  self.closing = true
  for _, listener in ipairs(self.listeners) do
    for _, srv in ipairs(listener.servers) do pcall(srv.close, srv) end
  end
end

return M
