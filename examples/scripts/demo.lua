-- demo.lua: the whole loop on one machine, offline (run it with `make demo`):
--   1. start signalr-emulator, a local Azure SignalR Service + Microsoft Entra ID;
--   2. the app server negotiates for a client: { url, accessToken };
--   3. the client connects with that token (WebSocket, SignalR JSON hub protocol);
--   4. the app server sends a message through the REST API;
--   5. the client receives it.
-- Lua 5.4; the client side uses lua-http (Debian lua-http), the app server side this SDK.
if _VERSION == "Lua 5.4" then -- Debian ships lua-http and lpeg_patterns under 5.1-5.3 only
  package.path = package.path .. ";/usr/share/lua/5.3/?.lua;/usr/share/lua/5.3/?/init.lua"
    .. ";/usr/share/lua/5.2/?.lua;/usr/share/lua/5.2/?/init.lua"
end

local signalr = require "signalr"
local cjson = require "cjson"
local http_request = require "http.request"
local http_tls = require "http.tls"
local websocket = require "http.websocket"
local x509_store = require "openssl.x509.store"

local RS = "\30" -- the JSON hub protocol ends every message with a record separator

local function say(fmt, ...) io.write(("  " .. fmt .. "\n"):format(...)) end

-- TLS context trusting the emulator's CA (verification stays on).
local function tls_context(ca_file)
  local ctx = http_tls.new_client_context()
  local store = x509_store.new()
  store:add(ca_file)
  ctx:setStore(store)
  return ctx
end

---------------------------------------------------------------------------------------
-- 1. The emulator: start it, wait for its ready line, read a connection string.
---------------------------------------------------------------------------------------
local function start_emulator()
  local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
  local state = os.getenv("DEMO_STATE_DIR") or ".state/demo"
  -- --watch-pid: the emulator stops by itself if this script dies first.
  local my_pid = assert(io.open("/proc/self/stat")):read("l"):match("^%d+")
  local cmd = ("exec lua5.4 %s/../../bin/signalr-emulator --state-dir %s --port 0 --ready-json --quiet --watch-pid %s")
    :format(here, state, my_pid)
  local proc = assert(io.popen(cmd, "r"))
  local line = assert(proc:read("l"), "the emulator did not start")
  local ready = cjson.decode(line)
  local admin_secret = assert(io.open(ready.admin_secret_file)):read("l")
  -- The admin API (loopback only) lists each resource with its connection strings.
  local req = http_request.new_from_uri(ready.authority .. "/admin/resources")
  req.ctx = tls_context(ready.ca_file)
  req.headers:upsert("authorization", "Bearer " .. admin_secret)
  local headers, stream = assert(req:go(10))
  assert(headers:get(":status") == "200", "admin API answered " .. headers:get(":status"))
  local resources = cjson.decode(assert(stream:get_body_as_string()))
  local _, resource = next(resources.resources or resources)
  return {
    ca_file = ready.ca_file,
    connection_string = resource.connection_string or resource.connection_strings.access_key,
    stop = function()
      os.execute(("kill %d"):format(ready.pid))
      proc:close()
    end,
  }
end

---------------------------------------------------------------------------------------
-- 3. A minimal client, as a browser's @microsoft/signalr would do it.
---------------------------------------------------------------------------------------
local function connect_client(neg, ca_file)
  local ctx = tls_context(ca_file)
  local base, query = neg.url:match("^(.-)/client/%?(.*)$")
  -- POST /client/negotiate with the token, then open the WebSocket.
  local req = http_request.new_from_uri(base .. "/client/negotiate?" .. query .. "&negotiateVersion=1")
  req.ctx = ctx
  req.headers:upsert(":method", "POST")
  req.headers:upsert("authorization", "Bearer " .. neg.accessToken)
  local headers, stream = assert(req:go(10))
  assert(headers:get(":status") == "200", "client negotiate answered " .. headers:get(":status"))
  local info = cjson.decode(assert(stream:get_body_as_string()))
  local ws_url = base:gsub("^http", "ws") .. "/client/?" .. query ..
    "&id=" .. info.connectionToken .. "&access_token=" .. neg.accessToken
  local ws = websocket.new_from_uri(ws_url)
  ws.request.ctx = ctx
  assert(ws:connect(10))
  assert(ws:send('{"protocol":"json","version":1}' .. RS))
  local handshake = assert(ws:receive(10))
  assert(handshake == "{}" .. RS, "handshake refused: " .. handshake)
  return {
    connection_id = info.connectionId,
    -- Next invocation (type 1), skipping pings; nil after `timeout` seconds.
    receive = function(timeout)
      local deadline = os.time() + timeout
      while os.time() <= deadline do
        local frame = ws:receive(timeout)
        if not frame then return nil end
        for message in frame:gmatch("([^" .. RS .. "]+)" .. RS) do
          local m = cjson.decode(message)
          if m.type == 1 then return m end
        end
      end
    end,
    close = function() ws:close() end,
  }
end

---------------------------------------------------------------------------------------
-- The demo
---------------------------------------------------------------------------------------
print("1. starting signalr-emulator")
local emu = start_emulator()
local ok, err = pcall(function()
  -- 2. The app server: one service object per endpoint, made once at start-up.
  local svc = assert(signalr.new { connection_string = emu.connection_string, ca_file = emu.ca_file })
  local neg = assert(svc:negotiate("chat", { user_id = "alice" }))
  print("2. negotiate for user alice")
  say("url         %s", neg.url)
  say("accessToken %d characters (a bearer credential: never print or log it)", #neg.accessToken)

  local client = connect_client(neg, emu.ca_file)
  print("3. client connected")
  say("connection id %s", client.connection_id)

  local hub = svc:hub("chat")
  assert(hub:send_to_user("alice", "newMessage", { "server", "hello alice, from the REST API" }))
  print("4. REST: send_to_user('alice', 'newMessage', ...) accepted")

  local message = assert(client.receive(10), "the client received nothing within 10 seconds")
  print("5. client received")
  say("target    %s", message.target)
  say("arguments %s", cjson.encode(message.arguments))
  client.close()
end)
emu.stop()
if not ok then
  io.stderr:write("demo failed: ", tostring(err), "\n")
  os.exit(1)
end
print("demo: ok")
