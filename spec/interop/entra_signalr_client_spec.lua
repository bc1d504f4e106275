-- The official @microsoft/signalr client (npm, spec/interop/signalr_client.mjs) connects to
-- signalr-emulator with a token from the SDK's Entra-mode negotiate (a client secret, the
-- temporary access key), and receives a message the SDK sends through REST with the same
-- Entra credential. Lua 5.4, like the other interop specs.
local cjson = require "cjson"
local signalr = require "signalr"
local node_client = require "spec.helpers.node_client"
local H = require "spec.helpers.entra"

local emu, res, stderr_file

setup(function()
  emu, res, stderr_file = node_client.session("entra")
end)

teardown(function()
  if emu then emu:stop() end
end)

local function start_client(token, hub)
  return node_client.start { ca_file = emu.ca_file, endpoint = res.endpoint, hub = hub, token = token,
                            stderr_file = stderr_file }
end

describe("@microsoft/signalr with an Entra-mode negotiate", function()
  it("connects with the SDK's negotiate token and receives what the SDK sends", function()
    local w = emu.world
    local cred = assert(signalr.credential.client_secret { tenant_id = w.tenant_id, client_id = w.app_id,
      client_secret = w.app_secret, authority_host = emu.authority })
    local svc = assert(signalr.new { endpoint = res.endpoint, credential = cred, ca_file = emu.ca_file })
    local neg = assert(svc:negotiate("chat", { user_id = "entra-node" }))
    assert.equal(res.endpoint .. "/client/?hub=chat", neg.url)
    local header = H.jwt(neg.accessToken)
    assert.is_string(header.kid) -- signed with the temporary access key, kid = KeyId
    assert.equal(svc:entra_status().key_id, header.kid)

    local next_event, close = start_client(neg.accessToken, "chat")
    local ev = next_event()
    assert.equal("connected", ev.event, cjson.encode(ev))
    local id = ev.connectionId

    local hub = svc:hub("chat")
    assert(hub:send_to_user("entra-node", "newMessage", { "hello from Entra", { n = 7 } }))
    ev = next_event()
    assert.equal("message", ev.event)
    assert.same({ "hello from Entra", { n = 7 } }, ev.args)

    assert.is_true(hub:connection_exists(id))
    assert(hub:close_connection(id, { reason = "bye" }))
    ev = next_event()
    assert.equal("closed", ev.event)
    assert.matches("bye", ev.error)
    assert.is_true(close())
    assert.falsy(node_client.read_file(stderr_file):find(neg.accessToken, 1, true))
  end)
end)
