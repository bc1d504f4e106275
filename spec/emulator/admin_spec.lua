-- The admin API over real HTTPS: its own secret, resources, clock, settings, tokens,
-- role assignments, fault injection (delay, status, 429 with Retry-After, reset, count)
-- and counters.
local emulator = require "spec.helpers.emulator"
local signing = require "spec.helpers.signing"
local jwt = require "signalr.emulator.jwt"
local admin = require "signalr.emulator.admin"
local cjson = require "cjson"
local cqueues = require "cqueues"

local emu, res
setup(function()
  emu = emulator.start()
  res = emu.resources.signalr1
end)
teardown(function() emu:stop() end)

local function send(path)
  path = path or "/api/hubs/chat/:send"
  local url = res.endpoint .. path .. "?api-version=2022-06-01"
  return emu:request { method = "POST", url = url, body = '{"target":"t"}',
    headers = { authorization = "Bearer " .. signing.rest(emu.world.access_keys[1], res.endpoint .. path),
      ["content-type"] = "application/json" } }
end

describe("admin API access", function()
  it("needs the admin secret", function()
    local status, h, body = emu:request { method = "GET", url = emu.authority .. "/admin/clock" }
    assert.equal(401, status)
    assert.truthy(h:get("www-authenticate"))
    assert.equal("Unauthorized", cjson.decode(body).code)
    status = emu:request { method = "GET", url = emu.authority .. "/admin/clock",
      headers = { authorization = "Bearer " .. emu.admin_secret .. "x" } }
    assert.equal(401, status)
    assert.equal(200, (emu:admin("GET", "/admin/clock")))
  end)

  it("answers loopback clients only", function()
    local routes = admin.routes { services = {}, secret = "s3cret-s3cret-s3cret", clock = {}, settings = {} }
    local handler
    for _, r in ipairs(routes) do
      if r.template == "/admin/clock" and r.method == "GET" then handler = r.handler end
    end
    local res403 = handler { loopback = false, headers = { authorization = "Bearer s3cret-s3cret-s3cret" } }
    assert.equal(403, res403.status)
  end)

  it("keeps the admin secret in a private file", function()
    local p = io.popen("stat -c %a " .. emu.admin_secret_file)
    assert.equal("600", p:read("*l"))
    p:close()
  end)
end)

describe("admin resources, clock, settings, tokens", function()
  it("lists resources with keys and connection strings", function()
    local status, body = emu:admin("GET", "/admin/resources")
    assert.equal(200, status)
    local r = body.resources[1]
    assert.equal("signalr1", r.name)
    assert.equal(res.endpoint, r.endpoint)
    assert.same(emu.world.access_keys, r.access_keys)
    assert.equal("Endpoint=" .. res.endpoint .. ";AccessKey=" .. emu.world.access_keys[1] .. ";Version=1.0;",
      r.connection_strings.access_key)
    assert.equal("Endpoint=" .. res.endpoint .. ";AuthType=azure.app;ClientId=" .. emu.world.app_id ..
      ";TenantId=" .. emu.world.tenant_id .. ";Version=1.0;", r.connection_strings.entra)
  end)

  it("moves the clock forward only", function()
    local _, before = emu:admin("GET", "/admin/clock")
    local status, after = emu:admin("POST", "/admin/clock", { advance = 10 })
    assert.equal(200, status)
    assert.is_true(after.now >= before.now + 10)
    assert.equal(400, (emu:admin("POST", "/admin/clock", { advance = -1 })))
    assert.equal(400, (emu:admin("POST", "/admin/clock", { advance = "x" })))
    assert.equal(400, (emu:admin("POST", "/admin/clock", "[1]")))
  end)

  it("reads and validates settings", function()
    local status, s = emu:admin("GET", "/admin/settings")
    assert.equal(200, status)
    assert.equal(5400, s.temp_key_lifetime)
    assert.equal(3600, s.token_lifetime)
    status, s = emu:admin("PUT", "/admin/settings", { token_lifetime = 120 })
    assert.equal(200, status)
    assert.equal(120, s.token_lifetime)
    assert.equal(400, (emu:admin("PUT", "/admin/settings", { nonsense = 1 })))
    assert.equal(400, (emu:admin("PUT", "/admin/settings", { temp_key_lifetime = 0 })))
    local _, again = emu:admin("GET", "/admin/settings")
    assert.equal(120, again.token_lifetime)
    assert.equal(5400, again.temp_key_lifetime)
  end)

  it("sets refresh_in for token answers, and a managed-identity token lifetime", function()
    local status = emu:admin("PUT", "/admin/settings",
      { refresh_in = 120, managed_identity_token_lifetime = 7200 })
    assert.equal(200, status)
    local w = emu.world
    local body = "grant_type=client_credentials&client_id=" .. w.app_id .. "&client_secret=" ..
      w.app_secret:gsub("~", "%%7E") .. "&scope=https%3A%2F%2Fsignalr.azure.com%2F.default"
    local code, _, text = emu:request { method = "POST", body = body,
      url = emu.authority .. "/" .. w.tenant_id .. "/oauth2/v2.0/token",
      headers = { ["content-type"] = "application/x-www-form-urlencoded" } }
    assert.equal(200, code)
    assert.equal(120, require("cjson").decode(text).refresh_in)
    local _, s = emu:admin("GET", "/admin/settings")
    assert.equal(7200, s.managed_identity_token_lifetime)
    assert.equal(400, (emu:admin("PUT", "/admin/settings", { refresh_in = 0 })))
  end)

  it("issues Entra tokens for any principal of a tenant", function()
    local status, body = emu:admin("POST", "/admin/tokens", { tenant_id = emu.world.tenant_id,
        principal_id = emu.world.user })
    assert.equal(200, status)
    local t = assert(jwt.decode(body.access_token))
    assert.equal(emu.world.tenant_id, t.claims.tid)
    assert.equal(emu.world.user, t.claims.oid)
    assert.equal("https://signalr.azure.com", t.claims.aud)
    assert.equal(404, (emu:admin("POST", "/admin/tokens", { tenant_id = emu.world.tenant_id,
        principal_id = emu.world.other_user })))
    assert.equal(400, (emu:admin("POST", "/admin/tokens", { tenant_id = emu.world.tenant_id })))
  end)

  it("adds, lists and removes role assignments", function()
    local status, body = emu:admin("GET", "/admin/role-assignments")
    assert.equal(200, status)
    assert.equal(emu.world.app_sp, body.role_assignments[1].principal_id)
    local a
    status, a = emu:admin("POST", "/admin/role-assignments",
      { principal_id = emu.world.user, role = "SignalR REST API Reader", scope = res.resource_id })
    assert.equal(201, status)
    assert.is_string(a.id)
    assert.equal(400, (emu:admin("POST", "/admin/role-assignments",
      { principal_id = emu.world.user, role = "No Such Role", scope = res.resource_id })))
    assert.equal(204, (emu:admin("DELETE", "/admin/role-assignments/" .. a.id)))
    assert.equal(404, (emu:admin("DELETE", "/admin/role-assignments/" .. a.id)))
  end)
end)

describe("fault injection and counters", function()
  before_each(function()
    assert.equal(204, (emu:admin("DELETE", "/admin/faults")))
    assert.equal(204, (emu:admin("DELETE", "/admin/counters")))
  end)

  it("answers a status a given number of times, then normally", function()
    local status, rule = emu:admin("POST", "/admin/faults",
      { route = "/api/hubs/{hub}/:send", method = "POST", resource = "signalr1", kind = "status", status = 503,
          count = 2 })
    assert.equal(201, status)
    assert.is_string(rule.id)
    for _ = 1, 2 do
      local st, _, body = send()
      assert.equal(503, st)
      assert.is_string(cjson.decode(body).message)
    end
    assert.equal(202, (send()))
    local _, counters = emu:admin("GET", "/admin/counters")
    assert.same({ ["503"] = 2, ["202"] = 1 }, counters.routes["POST /api/hubs/{hub}/:send"])
    local _, list = emu:admin("GET", "/admin/faults")
    assert.same({}, list.faults)
  end)

  it("throttles with 429 and Retry-After, and can carry a custom body", function()
    emu:admin("POST", "/admin/faults", { route = "/api/hubs/{hub}/:send", kind = "throttle", retry_after = 7,
        count = 1 })
    local status, h, body = send()
    assert.equal(429, status)
    assert.equal("7", h:get("retry-after"))
    assert.equal("TooManyRequests", cjson.decode(body).code)
    emu:admin("POST", "/admin/faults", { route = "*", resource = "signalr1", kind = "status", status = 500,
      body = "plain failure", count = 1 })
    status, h, body = send()
    assert.is_nil(h:get("retry-after"))
    assert.equal(500, status)
    assert.equal("plain failure", body)
  end)

  it("delays a route", function()
    emu:admin("POST", "/admin/faults", { route = "/api/health", kind = "delay", delay = 0.3, count = 1 })
    local t0 = cqueues.monotime()
    assert.equal(200, (emu:request { method = "GET", url = res.endpoint .. "/api/health" }))
    assert.is_true(cqueues.monotime() - t0 >= 0.3)
  end)

  it("drops the connection without an answer (reset), then recovers", function()
    emu:admin("POST", "/admin/faults", { route = "/api/health", kind = "reset", count = 1 })
    local cmd = "curl -sS -o /dev/null --cacert %s %s/api/health 2>&1; echo \"exit=$?\""
    local p = io.popen(cmd:format(emu.ca_file, res.endpoint))
    local out = p:read("*a")
    p:close()
    assert.matches("exit=52", out)   -- curl: empty reply from server
    assert.equal(200, (emu:request { method = "GET", url = res.endpoint .. "/api/health" }))
    local _, counters = emu:admin("GET", "/admin/counters")
    assert.equal(1, counters.routes["GET /api/health"].reset)
  end)

  it("faults the Entra token endpoint by listener name", function()
    emu:admin("POST", "/admin/faults", { route = "/{tenant}/oauth2/v2.0/token", resource = "entra", kind = "status",
      status = 503, count = 1 })
    local url = emu.authority .. "/" .. emu.world.tenant_id .. "/oauth2/v2.0/token"
    local status = emu:request { method = "POST", url = url, body = "grant_type=client_credentials",
      headers = { ["content-type"] = "application/x-www-form-urlencoded" } }
    assert.equal(503, status)
  end)

  it("refuses malformed fault rules with a reason", function()
    for _, rule in ipairs {
      { route = "*", kind = "explode" },
      { kind = "status", status = 500 },
      { route = "*", kind = "status" },
      { route = "*", kind = "status", status = 99 },
      { route = "*", kind = "delay" },
      { route = "*", kind = "delay", delay = -1 },
      { route = "*", kind = "throttle", count = 0 },
    } do
      local status, body = emu:admin("POST", "/admin/faults", rule)
      assert.equal(400, status, cjson.encode(rule))
      assert.is_string(body.message)
    end
  end)

  it("never faults the admin API itself", function()
    emu:admin("POST", "/admin/faults", { route = "*", kind = "status", status = 500 })
    assert.equal(200, (emu:admin("GET", "/admin/clock")))
    assert.equal(204, (emu:admin("DELETE", "/admin/faults")))
  end)
end)
