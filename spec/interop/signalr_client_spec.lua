-- Interop with code nobody here wrote: the official @microsoft/signalr client (npm,
-- pinned 8.0.17) connects to signalr-emulator through /client/negotiate with a token this
-- spec signed (jwt.lua over luaossl, never the SDK), trusting the emulator's CA through
-- NODE_EXTRA_CA_CERTS, and receives what the REST API sends; :invoke gets its client
-- result back; closing through REST ends it with the reason.
local cjson = require "cjson"
local emulator = require "spec.helpers.emulator"
local signing = require "spec.helpers.signing"

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
  stderr_file = emulator.state_dir() .. "/node-signalr-stderr.txt"
end)

teardown(function()
  if emu then emu:stop() end
end)

-- Starts the Node client; returns a reader of its JSON event lines and a closer.
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
    assert.falsy(read_file(stderr_file):find(token, 1, true))
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
