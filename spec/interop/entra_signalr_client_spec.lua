-- The official @microsoft/signalr client (npm, spec/interop/signalr_client.mjs) connects to
-- signalr-emulator with a token from the SDK's Entra-mode negotiate (a client secret, the
-- temporary access key), and receives a message the SDK sends through REST with the same
-- Entra credential. Lua 5.4, like the other interop specs.
local cjson = require "cjson"
local signalr = require "signalr"
local emulator = require "spec.helpers.emulator"
local H = require "spec.helpers.entra"

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
  assert(version, "@microsoft/signalr is not installed: run `npm ci --prefix spec/interop`")
  emu = emulator.start()
  res = emu.resources.signalr1
  stderr_file = emulator.state_dir() .. "/node-entra-stderr.txt"
end)

teardown(function()
  if emu then emu:stop() end
end)

local function start_client(token, hub)
  local env = { PATH = os.getenv("PATH"), HOME = os.getenv("HOME") or "/tmp", NODE_EXTRA_CA_CERTS = emu.ca_file,
    EMU_ENDPOINT = res.endpoint, EMU_HUB = hub, EMU_TOKEN = token }
  local parts = { "env", "-i" }
  for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. shell_quote(v) end
  parts[#parts + 1] = "timeout 90 node " .. shell_quote(INTEROP .. "/signalr_client.mjs")
  local pipe = assert(io.popen(table.concat(parts, " ") .. " 2>" .. shell_quote(stderr_file), "r"))
  local function next_event()
    local line = pipe:read("*l")
    assert(line, "the Node client ended without an event: " .. read_file(stderr_file):sub(1, 2000))
    local ev = cjson.decode(line)
    assert.is_table(ev)
    return ev
  end
  local function close()
    local ok, _, code = pipe:close()
    return ok == true or code == 0
  end
  return next_event, close
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
    assert.falsy(read_file(stderr_file):find(neg.accessToken, 1, true))
  end)
end)
