-- The SDK's REST calls reach the official @microsoft/signalr client (npm, pinned in
-- spec/interop/package.json; installed by .ci/setup) connected to signalr-emulator, in both
-- auth modes: broadcast with excluded, user, group, connection, invoke with a client
-- result, close with a reason. The Node side is spec/interop/signalr_client.mjs: it prints
-- one JSON line per event ("connected", "message" for newMessage, "closed").
local signalr = require "signalr"
local cjson = require "cjson"
local emulator = require "spec.helpers.emulator"

local INTEROP = emulator.ROOT .. "/spec/interop"

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

local emu, res, stderr_file

setup(function()
  local p = io.popen("test -f " .. shell_quote(INTEROP .. "/node_modules/@microsoft/signalr/package.json") ..
    " && node --version 2>&1")
  local version = p:read("*l")
  p:close()
  assert(version, "@microsoft/signalr is not installed: run `npm ci --prefix spec/interop` (.ci/setup does)")
  emu = emulator.start()
  res = emu.resources.signalr1
  stderr_file = emulator.state_dir() .. "/node-rest-interop-stderr.txt"
end)

teardown(function()
  if emu then emu:stop() end
end)

-- Starts the official client with a token from svc:negotiate; returns its event reader,
-- its connection id and a closer.
local function start_client(negotiator, hub, user)
  local neg = assert(negotiator:negotiate(hub, { user_id = user }))
  local env = { PATH = os.getenv("PATH"), HOME = os.getenv("HOME") or "/tmp", NODE_EXTRA_CA_CERTS = emu.ca_file,
    EMU_ENDPOINT = res.endpoint, EMU_HUB = hub, EMU_TOKEN = neg.accessToken }
  local parts = { "env", "-i" }
  for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. shell_quote(v) end
  parts[#parts + 1] = "timeout 90 node " .. shell_quote(INTEROP .. "/signalr_client.mjs")
  local pipe = assert(io.popen(table.concat(parts, " ") .. " 2>>" .. shell_quote(stderr_file), "r"))
  local function next_event()
    local line = pipe:read("*l")
    assert(line, "the Node client ended without an event: " .. read_file(stderr_file):sub(1, 2000))
    local ev = cjson.decode(line)
    assert.is_table(ev)
    return ev
  end
  local ev = next_event()
  assert.equal("connected", ev.event, cjson.encode(ev))
  local function close()
    local ok, _, code = pipe:close()
    return ok == true or code == 0
  end
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
