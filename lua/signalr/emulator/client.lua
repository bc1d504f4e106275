-- Client connections: POST /client/negotiate and the WebSocket /client/ endpoint speaking
-- the SignalR JSON hub protocol (handshake, invocation, completion, ping, close), so the
-- official clients connect and receive what the REST API sends.
local cqueues = require "cqueues"
local condition = require "cqueues.condition"
local errno_mod = require "cqueues.errno"
local server = require "signalr.emulator.server"
local json = require "signalr.emulator.json"
local hubs_mod = require "signalr.emulator.hubs"
local rest = require "signalr.emulator.rest"
local service = require "signalr.emulator.service"

local monotime = cqueues.monotime
local RS = "\30"

local M = {}

M.PENDING_LIFETIME = 300       -- a negotiated connection must connect within 5 minutes
M.MAX_QUEUE = 10000            -- outbound messages buffered per connection
M.MAX_MESSAGE = 1024 * 1024    -- largest hub message accepted from a client

local CORS = {
  ["access-control-allow-origin"] = "*",
  ["access-control-allow-headers"] = "authorization, content-type, x-requested-with, x-signalr-user-agent",
  ["access-control-allow-methods"] = "POST, GET, OPTIONS",
}

local function with_cors(res)
  res.headers = res.headers or {}
  for k, v in pairs(CORS) do res.headers[k] = v end
  return res
end

local function client_error(status, message)
  local res = server.json(status, { error = message })
  if status == 401 then
    res.headers["www-authenticate"] = 'Bearer error="invalid_token"'
  end
  return with_cors(res)
end

local function token_of(req)
  local t = service.bearer(req)
  if t then return t end
  local q = req.query.access_token
  return q and q[#q]
end

-- Validates hub and token. Returns hub_key, claims | nil, response.
local function authenticate(svc, req)
  local hub = req.query.hub and req.query.hub[#req.query.hub]
  if not hub or not rest.valid_hub(hub) then
    return nil, client_error(400, "A valid 'hub' query parameter is required.")
  end
  local token = token_of(req)
  if not token then return nil, client_error(401, "An access token is required.") end
  local key = hub:lower()
  local claims, reason, status = svc:verify_client_token(token, key, req)
  if not claims then return nil, client_error(status or 401, reason) end
  return key, claims
end

local function user_of(claims)
  local uid = claims["asrs.s.uid"] or claims.nameid or
    claims["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier"]
  if type(uid) == "table" then uid = uid[1] end
  if type(uid) == "number" then uid = tostring(math.tointeger(uid) or uid) end
  if type(uid) ~= "string" or uid == "" then return nil end
  return uid
end

local function roles_of(claims)
  local r = claims.role or claims["http://schemas.microsoft.com/ws/2008/06/identity/claims/role"]
  if type(r) == "string" then return { r } end
  if type(r) == "table" then return r end
  return {}
end

-------------------------------------------------------------------------------
-- negotiate

local function negotiate(svc, pending, req)
  local key, claims = authenticate(svc, req)
  if not key then return claims end
  local version = tonumber(req.query.negotiateversion and req.query.negotiateversion[1]) or 0
  local connection_id = svc:random_id():sub(1, 22)
  local now = svc.clock:now()
  for t, p in pairs(pending) do
    if p.expires_at <= now then pending[t] = nil end
  end
  local body = {
    connectionId = connection_id,
    availableTransports = json.array {
      { transport = "WebSockets", transferFormats = json.array { "Text", "Binary" } },
    },
  }
  local token = connection_id
  if version >= 1 then
    token = svc:random_id()
    body.negotiateVersion = 1
    body.connectionToken = token
  else
    body.negotiateVersion = 0
  end
  pending[token] = { connection_id = connection_id, hub = key, expires_at = now + M.PENDING_LIFETIME }
  return with_cors(server.json(200, body))
end

-------------------------------------------------------------------------------
-- a live connection

local Conn = {}
Conn.__index = Conn

local function new_conn(svc, key, id, claims, ws)
  local self = setmetatable({
    id = id, user_id = user_of(claims), roles = roles_of(claims), claims = claims, svc = svc,
    hub_key = key, ws = ws, queue = {}, cond = condition.new(), open = true,
    invocations = {}, next_invocation = 0, last_sent = monotime(),
  }, Conn)
  self.send = function(text) self:enqueue(text) end
  self.close = function(reason) self:close_with(reason) end
  self.invoke = function(payload, timeout) return self:invoke_client(payload, timeout) end
  return self
end

function Conn:enqueue(text)
  if not self.open then return end
  if #self.queue >= M.MAX_QUEUE then
    self:close_with("Too many messages are waiting for this connection.")
    return
  end
  self.queue[#self.queue + 1] = text .. RS
  self.cond:signal()
end

-- Sends a Close message, then closes the socket once the writer has flushed it.
function Conn:close_with(reason)
  if not self.open then return end
  local msg = { type = 7 }
  if reason and reason ~= "" then msg.error = reason end
  self.queue[#self.queue + 1] = json.encode(msg) .. RS
  self.open = false
  self.closing = true
  self.cond:signal()
end

function Conn:invoke_client(payload, timeout)
  if not self.open then return { closed = true } end
  self.next_invocation = self.next_invocation + 1
  local id = tostring(self.next_invocation)
  local waiter = { cond = condition.new() }
  self.invocations[id] = waiter
  self:enqueue(rest.invocation_text(payload, id))
  local deadline = monotime() + timeout
  while not waiter.done do
    local left = deadline - monotime()
    if left <= 0 then break end
    waiter.cond:wait(left)
  end
  self.invocations[id] = nil
  if not waiter.done then return { timeout = true } end
  return waiter.outcome
end

function Conn:fail_invocations()
  for _, w in pairs(self.invocations) do
    w.done = true
    w.outcome = { closed = true }
    w.cond:signal()
  end
end

-- The writer: drains the queue in order and sends keep-alive pings when idle.
function Conn:writer()
  local interval = self.svc.settings.keep_alive_interval
  while true do
    if #self.queue == 0 then
      if self.closing or self.gone or self.finished then break end
      local idle = monotime() - self.last_sent
      if idle >= interval then
        self.queue[1] = '{"type":6}' .. RS
      else
        self.cond:wait(interval - idle)
      end
    else
      local batch = table.concat(self.queue)
      self.queue = {}
      local ok = self.ws:send(batch, "text", 10)
      self.last_sent = monotime()
      if not ok then break end
    end
  end
  self.writer_done = true
  self.open = false
  self.cond:signal()
end

local function completion(self, msg)
  local w = type(msg.invocationId) == "string" and self.invocations[msg.invocationId]
  if not w then return end
  w.done = true
  if msg.error ~= nil then
    w.outcome = { error = msg.error }
  else
    w.outcome = { result = msg._raw_result }
  end
  w.cond:signal()
end

local function handle_message(self, text)
  local msg = json.decode(text)
  if type(msg) ~= "table" or math.type(msg.type) ~= "integer" then return "bad" end
  local t = msg.type
  if t == 6 or t == 8 or t == 9 then return end              -- ping, ack, sequence
  if t == 7 then return "close" end
  if t == 3 then
    local raw = json.raw_members(text) or {}
    msg._raw_result = raw.result
    return completion(self, msg)
  end
  if t == 1 or t == 4 then
    -- serverless: no app server hosts hub methods, so a client invocation has nowhere to go
    if type(msg.invocationId) == "string" then
      self:enqueue(json.encode { type = 3, invocationId = msg.invocationId,
        error = "Invocation of '" .. tostring(msg.target) ..
          "' failed: this emulated resource runs in serverless mode without upstream." })
    end
  end
end

-- Reads the handshake request (first record). Returns table | nil, reason.
local function read_handshake(ws, timeout)
  local buf, deadline = "", monotime() + timeout
  while not buf:find(RS, 1, true) do
    local left = deadline - monotime()
    if left <= 0 then return nil, "handshake timeout" end
    local data, _ = ws:receive(left)
    if not data then return nil, "closed before handshake" end
    buf = buf .. data
    if #buf > 4096 then return nil, "handshake too long" end
  end
  local first, rest_text = buf:match("^([^\30]*)\30(.*)$")
  local hs = json.decode(first)
  if type(hs) ~= "table" then return nil, "handshake is not JSON" end
  return hs, rest_text
end

-- The reader: splits records, answers them, and watches the client timeout. After a
-- Close message it waits (briefly) for the client to close its side, as clients do.
function Conn:run(initial)
  local client_timeout = self.svc.settings.client_timeout
  local buf = initial or ""
  local last_heard = monotime()
  local close_deadline
  while true do
    local start = 1
    while self.open do
      local i = buf:find(RS, start, true)
      if not i then break end
      local outcome = handle_message(self, buf:sub(start, i - 1))
      if outcome == "close" then
        self.open = false
      elseif outcome == "bad" then
        self:close_with("Connection closed with an error. " ..
          "InvalidDataException: the message is not valid JSON hub protocol.")
      end
      start = i + 1
    end
    buf = buf:sub(start)
    if #buf > M.MAX_MESSAGE then self:close_with("Message too large.") end
    if not self.open and not self.closing then return end   -- the client said Close
    if self.closing then
      close_deadline = close_deadline or monotime() + 2
      if monotime() >= close_deadline or self.writer_done then return end
    elseif monotime() - last_heard >= client_timeout then
      self:close_with("Server timeout elapsed without receiving a message from the client.")
    end
    local wait = self.closing and 0.05 or math.min(client_timeout - (monotime() - last_heard), 1)
    local data, _, errno = self.ws:receive(math.max(wait, 0.01))
    if data then
      last_heard = monotime()
      buf = buf .. data
    elseif errno ~= errno_mod.ETIMEDOUT then
      self.gone = true
      return
    end
  end
end

local function run_socket(svc, key, id, claims, ws)
  local self = new_conn(svc, key, id, claims, ws)
  local hs, rest_or_err = read_handshake(ws, svc.settings.handshake_timeout)
  if not hs then
    ws:close(1002, "handshake failed", 1)
    return
  end
  if hs.protocol ~= "json" then
    local refusal = "Requested protocol '" .. tostring(hs.protocol) .. "' is not available."
    ws:send(json.encode { error = refusal } .. RS, "text", 5)
    ws:close(1000, "", 1)
    return
  end
  if hs.version ~= 1 then
    local refusal = "The server does not support version " .. tostring(hs.version) .. " of the 'json' protocol."
    ws:send(json.encode { error = refusal } .. RS, "text", 5)
    ws:close(1000, "", 1)
    return
  end
  svc.hubs:add_connection(key, self)
  for _, g in ipairs(type(claims["asrs.s.emulator.groups"]) == "table" and claims["asrs.s.emulator.groups"] or {}) do
    if type(g) == "string" and rest.valid_group(g) then svc.hubs:add_to_group(key, g, id) end
  end
  self.queue[1] = "{}" .. RS
  cqueues.running():wrap(function() self:writer() end)
  self.cond:signal()
  local ok, e = pcall(self.run, self, rest_or_err)
  self.open = false
  self.finished = true
  svc.hubs:remove_connection(key, id)
  self:fail_invocations()
  -- let the writer flush a pending Close message before the socket goes
  local deadline = monotime() + 2
  while not self.writer_done and monotime() < deadline do
    self.cond:signal()
    cqueues.sleep(0.01)
  end
  self.gone = true
  pcall(ws.close, ws, 1000, "", 0.5)
  if not ok then error(e, 0) end
end

local function websocket(svc, pending, req)
  local key, claims = authenticate(svc, req)
  if not key then return claims end
  local id
  local token = req.query.id and req.query.id[#req.query.id]
  local p = token and pending[token]
  if token and (not p or p.expires_at <= svc.clock:now() or p.hub ~= key) then
    return client_error(404, "No Connection with that ID")
  end
  if (req.headers.upgrade or ""):lower() ~= "websocket" then
    return client_error(400, "Only the WebSockets transport is supported by this emulator.")
  end
  if p then
    pending[token] = nil   -- a connection token is good for one connection
    id = p.connection_id
  else
    id = svc:random_id():sub(1, 22)
  end
  return { websocket = function(ws) run_socket(svc, key, id, claims, ws) end }
end

function M.routes(svc)
  local pending = {}
  local function cors_preflight()
    return with_cors({ status = 204, headers = {}, body = "" })
  end
  return {
    { method = "POST", template = "/client/negotiate",
      handler = function(req) return negotiate(svc, pending, req) end },
    { method = "OPTIONS", template = "/client/negotiate", handler = cors_preflight },
    { method = "GET", template = "/client/", handler = function(req) return websocket(svc, pending, req) end },
    { method = "GET", template = "/client", handler = function(req) return websocket(svc, pending, req) end },
  }
end

M.user_of = user_of
M.hub_key = hubs_mod.key
return M
