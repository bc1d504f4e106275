-- The config: examples/emulator.json loads and means what docs/emulator.md says, the
-- default world (no --config) is generated once and reused, and bad fields are named.
local emulator = require "spec.helpers.emulator"
local config = require "signalr.emulator.config"
local json = require "signalr.emulator.json"
local cjson = require "cjson"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

describe("examples/emulator.json", function()
  local emu, cfg
  setup(function()
    cfg = assert(json.decode(read(emulator.ROOT .. "/examples/emulator.json")))
    -- fixed ports in the example; free ones here
    cfg.port, cfg.imds_port = 0, 0
    for _, r in ipairs(cfg.resources) do r.port = 0 end
    emu = emulator.start { raw_config = cfg }
  end)
  teardown(function() if emu then emu:stop() end end)

  local T1 = "0ae3bced-de80-45c8-8368-a66260bcd46c"
  local function token(oid, tenant)
    local status, body = emu:admin("POST", "/admin/tokens", { tenant_id = tenant or T1, principal_id = oid })
    assert.equal(200, status, cjson.encode(body))
    return body.access_token
  end
  local function call(resource, method, path, tok, body)
    local r = emu.resources[resource]
    local sep = path:find("?", 1, true) and "&" or "?"
    local status = emu:request { method = method, url = r.endpoint .. path .. sep .. "api-version=2024-12-01",
      body = body, headers = { authorization = "Bearer " .. tok, ["content-type"] = "application/json" } }
    return status
  end
  local SEND = '{"target":"t"}'

  it("starts both resources with the configured ids and local-auth states", function()
    local _, body = emu:admin("GET", "/admin/resources")
    local by = {}
    for _, r in ipairs(body.resources) do by[r.name] = r end
    assert.matches("/resourceGroups/chat%-rg/providers/Microsoft%.SignalRService/SignalR/signalr1$",
        by.signalr1.resource_id)
    assert.is_true(by.signalr1.local_auth)
    assert.is_false(by.signalr2.local_auth)
    assert.same({}, by.signalr2.access_keys)
    assert.matches("ClientId=68e1f12b%-461b%-4870%-9498%-fafc1b3ad9a3", by.signalr1.connection_strings.entra)
  end)

  it("grants what its role assignments say", function()
    local app = token("60d5dd04-06ee-4d2b-9670-cdba5f208bde")
    assert.equal(200, call("signalr1", "GET", "/api/v1/auth/accessKey", app))
    assert.equal(403, call("signalr1", "POST", "/api/hubs/h/:send", app, SEND))
    local tool = token("3e3936b0-2d4c-4c44-9326-f2c934841ae0")
    assert.equal(202, call("signalr1", "POST", "/api/hubs/h/:send", tool, SEND))
    assert.equal(202, call("signalr2", "POST", "/api/hubs/h/:send", tool, SEND))
    local bob = token("78932944-8432-44cd-9b23-dcfe8f8a3c42")       -- ops group, management group scope
    assert.equal(404, call("signalr1", "HEAD", "/api/hubs/h/users/u", bob))
    assert.equal(403, call("signalr1", "POST", "/api/hubs/h/:send", bob, SEND))
    local alice = token("ea1cf1a8-0fc4-46e9-846e-ceb7e1225725")
    assert.equal(403, call("signalr1", "HEAD", "/api/hubs/h/users/u", alice))
    local uami = token("0391d353-58ab-480e-bc9c-27b6dcb7cd82")      -- custom Broadcaster
    assert.equal(202, call("signalr1", "POST", "/api/hubs/h/:send", uami, SEND))
    assert.equal(403, call("signalr1", "PUT", "/api/hubs/h/users/u/groups/g", uami))
    local vm = token("cde4b6ea-28e4-4c9f-9274-7774f4574539")
    assert.equal(202, call("signalr2", "POST", "/api/hubs/h/:send", vm, SEND))
    assert.equal(403, call("signalr1", "POST", "/api/hubs/h/:send", vm, SEND))
    local multi = token("128adbf2-9804-464f-8bdc-701402f02492")     -- former role name
    assert.equal(202, call("signalr1", "POST", "/api/hubs/h/:send", multi, SEND))
    local mallory = token("c1c70b01-9626-4e47-b6c0-e6cbc4f1267b", "2626222c-b828-4e4f-aedb-0988119f6537")
    assert.equal(401, call("signalr1", "POST", "/api/hubs/h/:send", mallory, SEND))
  end)
end)

describe("the default world", function()
  it("is generated once into the state directory and reused", function()
    local dir = emulator.state_dir() .. "/default-world-" .. os.time()
    local function start()
      local p = io.popen(("exec lua5.4 %s --state-dir %s --port 0 --ready-json --watch-pid %s 2>>%s/log.txt"):format(
        emulator.BIN, dir, io.open("/proc/self/stat"):read("*l"):match("^%d+"), emulator.state_dir()))
      local ready = cjson.decode(p:read("*l"))
      return p, ready
    end
    local p1, r1 = start()
    os.execute(("kill -TERM %d"):format(r1.pid))
    p1:read("*a")
    assert.is_true((p1:close()))
    local stat = io.popen("stat -c %a " .. dir .. "/emulator.json")
    assert.equal("600", stat:read("*l"))
    stat:close()
    local generated = cjson.decode(read(dir .. "/emulator.json"))
    assert.equal(1, #generated.resources)
    assert.equal(1, #generated.tenants[1].apps[1].secrets)
    local p2, r2 = start()
    finally(function()
      os.execute(("kill -TERM %d"):format(r2.pid))
      p2:read("*a")
      p2:close()
    end)
    assert.equal(r1.resources.signalr1.resource_id, r2.resources.signalr1.resource_id)
    assert.equal(r1.resources.signalr1.tenant_id, r2.resources.signalr1.tenant_id)
    assert.equal(r1.ca_file, r2.ca_file)
    -- the generated app secret gets an Entra token, and the app may fetch temporary keys
    local app = generated.tenants[1].apps[1]
    local form = "grant_type=client_credentials&client_id=" .. app.client_id ..
      "&client_secret=" .. app.secrets[1] .. "&scope=https%3A%2F%2Fsignalr.azure.com%2F.default"
    local status, _, body = emulator.http { method = "POST",
        url = r2.authority .. "/" .. r2.resources.signalr1.tenant_id ..
      "/oauth2/v2.0/token", body = form, ca_file = r2.ca_file,
      headers = { ["content-type"] = "application/x-www-form-urlencoded" } }
    assert.equal(200, status)
    local access = cjson.decode(body).access_token
    status = emulator.http { method = "GET", url = r2.resources.signalr1.endpoint .. "/api/v1/auth/accessKey",
      ca_file = r2.ca_file, headers = { authorization = "Bearer " .. access } }
    assert.equal(200, status)
  end)
end)

describe("config validation", function()
  local function base()
    return {
      tenants = { { id = "0ae3bced-de80-45c8-8368-a66260bcd46c", name = "t" } },
      resources = { { name = "res1", tenant = "t", subscription = "8f190ebf-660b-45f8-bfaf-f3e35dfa8bfc" } },
    }
  end

  local cases = {
    { "port", function(c) c.port = 70000 end },
    { "imds_port", function(c) c.imds_port = -1 end },
    { "host", function(c) c.host = "a b" end },
    { "resources", function(c) c.resources = {} end },
    { "resources%[1%]%.name", function(c) c.resources[1].name = "x" end },
    { "resources%[2%]%.name", function(c) c.resources[2] = { name = "RES1", tenant = "t" } end },
    { "resources%[1%]%.tenant", function(c) c.resources[1].tenant = "nope" end },
    { "resources%[1%]%.subscription", function(c) c.resources[1].subscription = "sub" end },
    { "resources%[1%]%.resource_group", function(c) c.resources[1].resource_group = "a/b" end },
    { "resources%[1%]%.access_keys", function(c) c.resources[1].access_keys = { "short" } end },
    { "resources%[1%]%.disable_local_auth", function(c) c.resources[1].disable_local_auth = "yes" end },
    { "resources%[1%]%.port", function(c) c.port = 9000; c.resources[1].port = 9000 end },
    { "settings%.nonsense", function(c) c.settings = { nonsense = 1 } end },
    { "settings%.invoke_timeout", function(c) c.settings = { invoke_timeout = 0 } end },
  }
  for _, case in ipairs(cases) do
    it("names " .. case[1]:gsub("%%", ""), function()
      local c = base()
      case[2](c)
      local ok, err = config.normalize(c)
      assert.is_nil(ok)
      assert.matches("^config: " .. case[1], err)
    end)
  end

  it("fills defaults", function()
    local c = assert(config.normalize(base()))
    assert.same({ host = "localhost", port = 8443, imds_port = 8445, http = false }, c.listen)
    assert.equal(8444, c.resources_normalized[1].port)
    assert.equal(5400, c.settings.temp_key_lifetime)
    assert.equal(2, #c.resources_normalized[1].access_keys)
    assert.matches("^/subscriptions/8f190ebf%-660b%-45f8%-bfaf%-f3e35dfa8bfc/resourceGroups/emulator%-rg" ..
      "/providers/Microsoft%.SignalRService/SignalR/res1$",
      c.resources_normalized[1].resource_id)
  end)
end)
