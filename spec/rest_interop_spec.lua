-- The SDK's REST calls reach the official @microsoft/signalr client (npm, pinned in
-- spec/interop/package.json; installed by .ci/setup) connected to signalr-emulator, in both
-- auth modes: broadcast with excluded, user, group, connection, invoke with a client
-- result, close with a reason. The Node side is spec/interop/signalr_client.mjs: it prints
-- one JSON line per event ("connected", "message" for newMessage, "closed").
local signalr = require "signalr"
local cjson = require "cjson"
local node_client = require "spec.helpers.node_client"

local emu, res, stderr_file

setup(function()
  emu, res, stderr_file = node_client.session("rest-interop")
end)

teardown(function()
  if emu then emu:stop() end
end)

-- Starts the official client with a token from svc:negotiate; returns its event reader,
-- its connection id and a closer.
local function start_client(negotiator, hub, user)
  local neg = assert(negotiator:negotiate(hub, { user_id = user }))
  local next_event, close = node_client.start { ca_file = emu.ca_file, endpoint = res.endpoint, hub = hub,
                                                token = neg.accessToken, stderr_file = stderr_file }
  local ev = next_event()
  assert.equal("connected", ev.event, cjson.encode(ev))
  return next_event, ev.connectionId, close
end

local function next_args(next_event)
  local ev = next_event()
  assert.equal("message", ev.event, cjson.encode(ev))
  return ev.args
end

for _, mode in ipairs { "access_key", "entra" } do
  describe("REST (" .. mode .. ") to the official @microsoft/signalr client", function()
    it("delivers broadcast (excluded), user, group and connection sends, invokes, and closes", function()
      local keyed = assert(signalr.new { connection_string = res.connection_string, ca_file = emu.ca_file })
      local svc = keyed
      if mode == "entra" then
        local w = emu.world
        svc = assert(signalr.new { endpoint = res.endpoint, ca_file = emu.ca_file,
          credential = assert(signalr.credential.client_secret { tenant_id = w.tenant_id, client_id = w.app_id,
            client_secret = w.app_secret, authority_host = emu.authority }) })
      end
      local name = "interop_" .. mode
      local hub = svc:hub(name)
      local next_a, id_a, close_a = start_client(keyed, name, "node-a")
      local next_b, id_b, close_b = start_client(keyed, name, "node-b")

      assert.is_true(hub:send_to_all("newMessage", { "to all", { n = 1 } }, { excluded = { id_b } }))
      assert.is_true(hub:send_to_all("newMessage", { "mark" }))
      assert.same({ "to all", { n = 1 } }, next_args(next_a))
      assert.same({ "mark" }, next_args(next_a))
      assert.same({ "mark" }, next_args(next_b))

      assert.is_true(hub:send_to_user("node-b", "newMessage", { "to b" }))
      assert.same({ "to b" }, next_args(next_b))

      assert.is_true(hub:add_connection_to_group(id_a, "room"))
      assert.is_true(hub:send_to_group("room", "newMessage", { "to the room" }))
      assert.is_true(hub:send_to_connection(id_b, "newMessage", { "to b's connection" }))
      assert.same({ "to the room" }, next_args(next_a))
      assert.same({ "to b's connection" }, next_args(next_b))

      -- a client result through :invoke (the Node client answers "ask" with n * 2)
      assert.same({ answer = 42 }, hub:invoke(id_a, "ask", { 21 }))

      assert.is_true(hub:close_connection(id_a, { reason = "bye from lua" }))
      local ev = next_a()
      assert.equal("closed", ev.event)
      assert.matches("bye from lua", ev.error, 1, true)
      assert.is_true(close_a())
      assert.is_true(hub:close_all_connections())
      assert.equal("closed", next_b().event)
      assert.is_true(close_b())
    end)
  end)
end
