-- Client connections over real HTTPS and WebSocket (lua-http, not the SDK): negotiate,
-- client token checks, the JSON hub protocol handshake, keep-alive, timeouts, client
-- invocations, bad frames, and shutdown.
local emulator = require "spec.helpers.emulator"
local hub_client = require "spec.helpers.hub_client"
local signing = require "spec.helpers.signing"
local cjson = require "cjson"

local RS = string.char(30)

local emu, res, key
setup(function()
  emu = emulator.start { config = { settings = { keep_alive_interval = 0.2, client_timeout = 1 } } }
  res = emu.resources.signalr1
  key = emu.world.access_keys[1]
end)
teardown(function() emu:stop() end)

local function negotiate(hub, token, extra)
  local url = res.endpoint .. "/client/negotiate?hub=" .. hub .. (extra or "&negotiateVersion=1")
  local headers = {}
  if token then headers.authorization = "Bearer " .. token end
  local status, h, body = emu:request { method = "POST", url = url, headers = headers }
  assert(status, h)
  return status, h, body
end

local function rest(method, path, body)
  local url = res.endpoint .. path .. "?api-version=2024-12-01"
  return emu:request { method = method, url = url, body = body,
    headers = { authorization = "Bearer " .. signing.rest(key, res.endpoint .. path),
        ["content-type"] = "application/json" } }
end

-- Waits until the emulator no longer lists the connection (each check is a round trip).
local function wait_gone(id)
  for _ = 1, 200 do
    local _, body = emu:admin("GET", "/admin/connections")
    local found = false
    for _, c in ipairs(body.connections) do
      if c.connection_id == id then found = true end
    end
    if not found then return true end
  end
  return false
end

describe("negotiate", function()
  it("answers negotiateVersion 1 with a connection token and the WebSockets transport", function()
    local token = signing.client(key, res.endpoint, "chat", { user = "u1" })
    local status, h, body = negotiate("chat", token)
    assert.equal(200, status)
    assert.equal("*", h:get("access-control-allow-origin"))
    local n = cjson.decode(body)
    assert.equal(1, n.negotiateVersion)
    assert.is_string(n.connectionId)
    assert.is_string(n.connectionToken)
    assert.are_not.equal(n.connectionId, n.connectionToken)
    assert.same({ { transport = "WebSockets", transferFormats = { "Text", "Binary" } } }, n.availableTransports)
    status = emu:request { method = "OPTIONS", url = res.endpoint .. "/client/negotiate?hub=chat" }
    assert.equal(204, status)
  end)

  it("answers negotiateVersion 0 without a token, and the connection id connects", function()
    local token = signing.client(key, res.endpoint, "chat", { user = "v0" })
    local c = assert(hub_client.connect { endpoint = res.endpoint, hub = "chat", token = token,
      ca_file = emu.ca_file, negotiate_version = 0 })
    finally(function() c:close() end)
    assert.is_nil(c.negotiated.connectionToken)
    assert.equal(0, c.negotiated.negotiateVersion)
    assert.equal(200, (rest("HEAD", "/api/hubs/chat/connections/" .. c.connection_id)))
  end)

  it("takes the token from access_token too, and hubs case-insensitively", function()
    local token = signing.client(key, res.endpoint, "chat", { user = "q" })
    local c = assert(hub_client.connect { endpoint = res.endpoint, hub = "Chat", token = token,
      ca_file = emu.ca_file, token_in = "query" })
    c:close()
  end)

  it("refuses bad client tokens with 401 and bad hubs with 400", function()
    local now = os.time()
    local cases = {
      { "aud with port", signing.client(key, res.endpoint, "chat", { aud = res.endpoint .. "/client/?hub=chat" }) },
      { "aud of another hub", signing.client(key, res.endpoint, "other") },
      { "aud of another host", signing.client(key, res.endpoint, "chat",
          { aud = "https://example.com/client/?hub=chat" }) },
      { "aud of another path", signing.client(key, res.endpoint, "chat", { aud = "https://localhost/api/?hub=chat" }) },
      { "expired", signing.client(key, res.endpoint, "chat", { now = now - 7200, lifetime = 60 }) },
      { "not yet valid", signing.client(key, res.endpoint, "chat", { nbf = now + 600 }) },
      { "wrong key", signing.client("some-other-key-some-other-key", res.endpoint, "chat") },
      { "garbage", "not.a.token" },
    }
    for _, case in ipairs(cases) do
      local status, _, body = negotiate("chat", case[2])
      assert.equal(401, status, case[1])
      assert.is_string(cjson.decode(body).error, case[1])
    end
    assert.equal(401, (negotiate("chat", nil)))
    assert.equal(400, (negotiate("1chat", signing.client(key, res.endpoint, "1chat"))))
    assert.equal(400, (emu:request { method = "POST", url = res.endpoint .. "/client/negotiate" }))
    local long = signing.client(key, res.endpoint, "chat", { claims = { pad = ("x"):rep(4200) } })
    local status, _, body = negotiate("chat", long)
    assert.equal(413, status)
    assert.matches("4K", cjson.decode(body).error)
  end)

  it("uses the connection token once and refuses unknown ids", function()
    local token = signing.client(key, res.endpoint, "chat", { user = "once" })
    local _, _, body = negotiate("chat", token)
    local n = cjson.decode(body)
    local function ws_url(id)
      return res.endpoint .. "/client/?hub=chat&id=" .. id .. "&access_token=" .. token
    end
    local c = assert(hub_client.connect { endpoint = res.endpoint, hub = "chat", token = token,
      ca_file = emu.ca_file, skip_negotiate = true })
    c:close()
    local status = emu:request { method = "GET", url = ws_url("unknown-id") }
    assert.equal(404, status)
    status = emu:request { method = "GET", url = ws_url(n.connectionToken) }
    -- a plain GET (no upgrade) is refused, and the id is still unused
    assert.equal(400, status)
    c = assert(hub_client.connect { endpoint = res.endpoint, hub = "chat", token = token,
      ca_file = emu.ca_file, id = n.connectionToken })
    -- the socket carries the negotiated connection id
    assert.equal(200, (rest("HEAD", "/api/hubs/chat/connections/" .. n.connectionId)))
    c:close()
    status = emu:request { method = "GET", url = ws_url(n.connectionToken) }
    assert.equal(404, status)
  end)
end)

describe("hub protocol", function()
  it("connects a user named by nameid and lists it in the admin API", function()
    local token = signing.client(key, res.endpoint, "chat", { nameid = "nina", roles = { "a", "b" } })
    local c = assert(hub_client.connect { endpoint = res.endpoint, hub = "chat", token = token, ca_file = emu.ca_file })
    finally(function() c:close() end)
    assert.equal(200, (rest("HEAD", "/api/hubs/chat/users/nina")))
    assert.equal(200, (rest("PUT", "/api/hubs/chat/groups/g1/connections/" .. c.connection_id)))
    local _, body = emu:admin("GET", "/admin/connections")
    local mine
    for _, x in ipairs(body.connections) do
      if x.connection_id == c.connection_id then mine = x end
    end
    assert.same({ resource = "signalr1", hub = "chat", connection_id = c.connection_id, user_id = "nina",
      groups = { "g1" } }, mine)
  end)

  it("refuses the messagepack protocol and unknown versions in the handshake", function()
    local token = signing.client(key, res.endpoint, "chat")
    local c, err = hub_client.connect { endpoint = res.endpoint, hub = "chat", token = token,
      ca_file = emu.ca_file, protocol = "messagepack" }
    assert.is_nil(c)
    assert.matches("Requested protocol 'messagepack' is not available", err)
    c, err = hub_client.connect { endpoint = res.endpoint, hub = "chat", token = token, ca_file = emu.ca_file,
        version = 2 }
    assert.is_nil(c)
    assert.matches("does not support version 2", err)
  end)

  it("sends keep-alive pings and closes silent clients after client_timeout", function()
    local token = signing.client(key, res.endpoint, "chat", { user = "quiet" })
    local c = assert(hub_client.connect { endpoint = res.endpoint, hub = "chat", token = token, ca_file = emu.ca_file })
    local ping = assert(c:receive(3, true))
    assert.equal(6, ping.type)
    local msg
    repeat msg = assert(c:receive(5, true)) until msg.type ~= 6
    assert.equal(7, msg.type)
    assert.matches("timeout", msg.error)
    assert.is_true(wait_gone(c.connection_id))
    c:close()
  end)

  it("keeps clients that ping", function()
    local token = signing.client(key, res.endpoint, "chat", { user = "chatty" })
    local c = assert(hub_client.connect { endpoint = res.endpoint, hub = "chat", token = token, ca_file = emu.ca_file })
    finally(function() c:close() end)
    -- answer each server ping with a ping, for longer than client_timeout (1 s)
    local pings = 0
    while pings < 8 do
      local msg = assert(c:receive(3, true))
      assert.equal(6, msg.type)
      pings = pings + 1
      c:send { type = 6 }
    end
    assert.equal(200, (rest("HEAD", "/api/hubs/chat/connections/" .. c.connection_id)))
  end)

  it("answers client invocations with an error completion (serverless, no upstream)", function()
    local token = signing.client(key, res.endpoint, "chat", { user = "caller" })
    local c = assert(hub_client.connect { endpoint = res.endpoint, hub = "chat", token = token, ca_file = emu.ca_file })
    finally(function() c:close() end)
    -- several records in one frame, one without invocationId (fire and forget)
    c:send_raw('{"type":6}' .. RS .. '{"type":1,"target":"Fire","arguments":[]}' .. RS ..
      '{"type":1,"invocationId":"7","target":"Echo","arguments":["x"]}' .. RS)
    local msg
    repeat msg = assert(c:receive(3)) until msg.type == 3
    assert.equal("7", msg.invocationId)
    assert.matches("serverless", msg.error)
  end)

  it("closes the connection on a frame that is not hub protocol JSON", function()
    local token = signing.client(key, res.endpoint, "chat", { user = "bad" })
    local c = assert(hub_client.connect { endpoint = res.endpoint, hub = "chat", token = token, ca_file = emu.ca_file })
    c:send_raw("{not json" .. RS)
    local msg
    repeat msg = assert(c:receive(3)) until msg.type == 7
    assert.matches("InvalidDataException", msg.error)
    assert.is_true(wait_gone(c.connection_id))
    c:close()
  end)

  it("forgets a connection whose client sent Close", function()
    local token = signing.client(key, res.endpoint, "chat", { user = "leaver" })
    local c = assert(hub_client.connect { endpoint = res.endpoint, hub = "chat", token = token, ca_file = emu.ca_file })
    local id = c.connection_id
    c:close()
    assert.is_true(wait_gone(id))
    assert.equal(404, (rest("HEAD", "/api/hubs/chat/connections/" .. id)))
  end)
end)

describe("shutdown with connected clients", function()
  it("sends every client a Close message and exits 0", function()
    local emu2 = emulator.start()
    local r = emu2.resources.signalr1
    local token = signing.client(emu2.world.access_keys[1], r.endpoint, "chat", { user = "z" })
    local c = assert(hub_client.connect { endpoint = r.endpoint, hub = "chat", token = token, ca_file = emu2.ca_file })
    local cq = require "cqueues".new()
    local got
    cq:wrap(function() got = c:receive(5) end)
    cq:wrap(function() assert.is_true((emu2:stop("INT"))) end)
    assert(cq:loop(10))
    assert.equal(7, got.type)
    assert.matches("shutting down", got.error)
  end)
end)
