-- Interop with code nobody here wrote: the official @microsoft/signalr client (npm,
-- pinned 8.0.17) connects to signalr-emulator through /client/negotiate with a token this
-- spec signed (jwt.lua over luaossl, never the SDK), trusting the emulator's CA through
-- NODE_EXTRA_CA_CERTS, and receives what the REST API sends; :invoke gets its client
-- result back; closing through REST ends it with the reason.
local cjson = require "cjson"
local node_client = require "spec.helpers.node_client"
local signing = require "spec.helpers.signing"

local emu, res, stderr_file

setup(function()
  emu, res, stderr_file = node_client.session("signalr")
end)

teardown(function()
  if emu then emu:stop() end
end)

local function start_client(token, hub)
  return node_client.start { ca_file = emu.ca_file, endpoint = res.endpoint, hub = hub, token = token,
                            stderr_file = stderr_file }
end

local function rest(method, path, body, query)
  local url = res.endpoint .. path .. "?api-version=2024-12-01" .. (query and ("&" .. query) or "")
  local status, _, text = emu:request { method = method, url = url, body = body and cjson.encode(body),
    headers = { authorization = "Bearer " .. signing.rest(emu.world.access_keys[1], res.endpoint .. path),
      ["content-type"] = "application/json" } }
  return status, text
end

describe("@microsoft/signalr against the emulator", function()
  it("connects with an access-key token, receives REST sends, answers :invoke, and closes", function()
    local token = signing.client(emu.world.access_keys[2], res.endpoint, "chat", { user = "node-user" })
    local next_event, close = start_client(token, "chat")
    local ev = next_event()
    assert.equal("connected", ev.event, cjson.encode(ev))
    local id = ev.connectionId
    assert.is_string(id)
    assert.equal(200, (rest("HEAD", "/api/hubs/chat/connections/" .. id)))
    assert.equal(200, (rest("HEAD", "/api/hubs/chat/users/node-user")))

    assert.equal(202, (rest("POST", "/api/hubs/chat/users/node-user/:send",
      { target = "newMessage", arguments = { "hello", { n = 1 } } })))
    ev = next_event()
    assert.equal("message", ev.event)
    assert.same({ "hello", { n = 1 } }, ev.args)

    assert.equal(200, (rest("PUT", "/api/hubs/chat/groups/room/connections/" .. id)))
    assert.equal(202, (rest("POST", "/api/hubs/chat/groups/room/:send", { target = "newMessage",
        arguments = { "to the room" } })))
    ev = next_event()
    assert.same({ "to the room" }, ev.args)

    local status, text = rest("POST", "/api/hubs/chat/connections/" .. id .. "/:invoke", { target = "ask",
        arguments = { 21 } })
    assert.equal(200, status, text)
    assert.same({ answer = 42 }, cjson.decode(text).result)

    assert.equal(200, (rest("DELETE", "/api/hubs/chat/connections/" .. id, nil, "reason=bye")))
    ev = next_event()
    assert.equal("closed", ev.event)
    assert.matches("bye", ev.error)
    assert.is_true(close())
    assert.falsy(node_client.read_file(stderr_file):find(token, 1, true))
  end)

  it("connects with a token signed by a temporary access key (Entra)", function()
    local _, tok = emu:admin("POST", "/admin/tokens", { tenant_id = emu.world.tenant_id,
        principal_id = emu.world.app_sp })
    local status, _, body = emu:request { method = "GET", url = res.endpoint .. "/api/v1/auth/accessKey",
      headers = { authorization = "Bearer " .. tok.access_token } }
    assert.equal(200, status)
    local k = cjson.decode(body)
    local token = signing.client(k.AccessKey, res.endpoint, "Chat", { user = "entra-node", kid = k.KeyId })
    local next_event, close = start_client(token, "Chat")
    local ev = next_event()
    assert.equal("connected", ev.event, cjson.encode(ev))
    assert.equal(202, (rest("POST", "/api/hubs/chat/:send", { target = "newMessage", arguments = { 1, 2, 3 } })))
    ev = next_event()
    assert.same({ 1, 2, 3 }, ev.args)
    assert.equal(204, (rest("POST", "/api/hubs/chat/:closeConnections")))
    assert.equal("closed", next_event().event)
    assert.is_true(close())
  end)
end)
