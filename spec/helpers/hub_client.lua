-- A small SignalR client for specs (Lua 5.4 and LuaJIT, lua-http's WebSocket, no SDK):
-- negotiate, WebSocket connect, JSON hub protocol handshake, receive with a timeout.
--
--   local hub_client = require "spec.helpers.hub_client"
--   local c = assert(hub_client.connect { endpoint = res.endpoint, hub = "chat",
--                                         token = t, ca_file = emu.ca_file })
--   local msg = c:next_invocation(5)   -- { type = 1, target =, arguments = }
--   c:close()
-- Debian ships lua-http (and lpeg_patterns) only under the 5.1-5.3 paths.
if _VERSION == "Lua 5.4" then
  for _, v in ipairs { "5.3", "5.2" } do
    if not package.path:find("/usr/share/lua/" .. v .. "/?.lua", 1, true) then
      package.path = package.path .. (";/usr/share/lua/%s/?.lua;/usr/share/lua/%s/?/init.lua"):format(v, v)
    end
  end
end

local cjson = require "cjson.safe"
local cqueues = require "cqueues"
local ETIMEDOUT = require "cqueues.errno".ETIMEDOUT
local websocket = require "http.websocket"
local emulator = require "spec.helpers.emulator"

local RS = string.char(30)
local M = {}

local function urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local Client = {}
Client.__index = Client

-- opts: endpoint, hub, token, ca_file, negotiate_version (default 1), skip_negotiate, id
-- (connect with this connection token, no negotiate),
-- protocol ("json"), version (1), token_in ("header" | "query") for negotiate.
-- Returns client | nil, err, status (the HTTP status when negotiate failed).
function M.connect(opts)
  local version = opts.negotiate_version or 1
  local id_param = opts.id
  if not opts.skip_negotiate and not opts.id then
    local url = opts.endpoint .. "/client/negotiate?hub=" .. urlencode(opts.hub) .. "&negotiateVersion=" .. version
    local headers = {}
    if opts.token_in == "query" then
      url = url .. "&access_token=" .. urlencode(opts.token)
    else
      headers.authorization = "Bearer " .. opts.token
    end
    local status, _, body = emulator.http { method = "POST", url = url, headers = headers, ca_file = opts.ca_file }
    if status ~= 200 then return nil, "negotiate failed: " .. tostring(status) .. " " .. tostring(body), status end
    local neg = cjson.decode(body)
    if type(neg) ~= "table" then return nil, "negotiate answer is not JSON" end
    id_param = neg.connectionToken or neg.connectionId
    if not id_param then return nil, "negotiate answer has no connection id" end
    opts.negotiated = neg
  end
  local ws_url = opts.endpoint:gsub("^http", "ws") .. "/client/?hub=" .. urlencode(opts.hub) ..
    (id_param and ("&id=" .. urlencode(id_param)) or "") .. "&access_token=" .. urlencode(opts.token)
  local ws = websocket.new_from_uri(ws_url)
  ws.request.ctx = emulator.client_context(opts.ca_file)
  local ok, err = ws:connect(10)
  if not ok then return nil, "websocket connect failed: " .. tostring(err) end
  local self = setmetatable({ ws = ws, buf = "", inbox = {}, negotiated = opts.negotiated,
    connection_id = opts.negotiated and opts.negotiated.connectionId }, Client)
  ok, err = ws:send(cjson.encode { protocol = opts.protocol or "json", version = opts.version or 1 } .. RS, "text", 5)
  if not ok then return nil, "handshake send failed: " .. tostring(err) end
  local hs
  hs, err = self:receive(10, true)
  if not hs then return nil, "no handshake answer: " .. tostring(err) end
  if hs.error then
    self:close()
    return nil, "handshake refused: " .. tostring(hs.error)
  end
  return self
end

-- Next hub message (a table). Pings are skipped unless `all`. nil, "timeout" | "closed".
function Client:receive(timeout, all)
  local deadline = cqueues.monotime() + (timeout or 5)
  while true do
    while #self.inbox > 0 do
      local msg = table.remove(self.inbox, 1)
      if all or msg.type ~= 6 then return msg end
    end
    local i = self.buf:find(RS, 1, true)
    if i then
      local text = self.buf:sub(1, i - 1)
      self.buf = self.buf:sub(i + 1)
      local msg = cjson.decode(text)
      if type(msg) ~= "table" then return nil, "bad JSON from server" end
      msg._raw = text
      self.inbox[#self.inbox + 1] = msg
    else
      local left = deadline - cqueues.monotime()
      if left <= 0 then return nil, "timeout" end
      local data, err, errno = self.ws:receive(left)
      if not data then
        if errno == ETIMEDOUT and self.ws.readyState < 3 then return nil, "timeout" end
        self.closed = true
        return nil, "closed", err
      end
      self.buf = self.buf .. data
    end
  end
end

-- Next invocation (type 1), optionally of `target`; other messages are kept.
function Client:next_invocation(timeout, target)
  local deadline = cqueues.monotime() + (timeout or 5)
  local skipped = {}
  while true do
    local left = deadline - cqueues.monotime()
    local msg, err = self:receive(math.max(left, 0))
    if not msg then
      for i = #skipped, 1, -1 do table.insert(self.inbox, 1, skipped[i]) end
      return nil, err
    end
    if msg.type == 1 and (not target or msg.target == target) then
      for i = #skipped, 1, -1 do table.insert(self.inbox, 1, skipped[i]) end
      return msg
    end
    if msg.type == 7 then
      for i = #skipped, 1, -1 do table.insert(self.inbox, 1, skipped[i]) end
      return nil, "closed by server: " .. tostring(msg.error)
    end
    skipped[#skipped + 1] = msg
  end
end

function Client:send(msg)
  return self.ws:send(cjson.encode(msg) .. RS, "text", 5)
end

function Client:send_raw(text)
  return self.ws:send(text, "text", 5)
end

-- Answers a server invocation (completion with a result or an error).
function Client:complete(invocation_id, result, err)
  local msg = { type = 3, invocationId = invocation_id }
  if err then msg.error = err else msg.result = result end
  return self:send(msg)
end

function Client:close()
  if self.ws.readyState < 3 then
    pcall(self.ws.send, self.ws, '{"type":7}' .. RS, "text", 1)
    self.ws:close(1000, "", 2)
  end
  self.closed = true
end

return M
