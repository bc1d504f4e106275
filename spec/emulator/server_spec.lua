-- The launcher and listeners over real sockets: --help, start-up time, TLS with the
-- emulator's CA, health, one log line per request without secrets, clean stops.
local emulator = require "spec.helpers.emulator"
local cjson = require "cjson"
local cqueues = require "cqueues"

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1", "r")
  local out = p:read("*a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

describe("signalr-emulator launcher", function()
  it("documents every option in --help and exits 0", function()
    local out, code = sh("lua5.4 " .. emulator.BIN .. " --help")
    assert.equal(0, code)
    for _, opt in ipairs { "--config", "--state-dir", "--host", "--port", "--http", "--ready-json",
      "--log-file", "--quiet", "--admin-secret-file", "--watch-pid", "--version", "--help" } do
      assert.truthy(out:find(opt, 1, true), "--help does not mention " .. opt)
    end
  end)

  it("prints its version", function()
    local out, code = sh("lua5.4 " .. emulator.BIN .. " --version")
    assert.equal(0, code)
    assert.matches("^signalr%-emulator %d+%.%d+%.%d+\n$", out)
  end)

  it("logs no request lines with --quiet", function()
    local emu = emulator.start { args = { "--quiet" } }
    assert.equal(200, (emu:request { method = "GET", url = emu.resources.signalr1.endpoint .. "/api/health" }))
    local _, counters = emu:admin("GET", "/admin/counters")
    assert.equal(1, counters.routes["GET /api/health"]["200"])
    assert.is_true((emu:stop()))
    assert.equal("", emu:log())
  end)

  it("refuses an unknown option with status 2 and a hint", function()
    local out, code = sh("lua5.4 " .. emulator.BIN .. " --bogus")
    assert.equal(2, code)
    assert.matches("unknown option %-%-bogus", out)
  end)

  it("names the bad field of an invalid config and exits 2", function()
    local path = emulator.state_dir() .. "/bad-config.json"
    local f = assert(io.open(path, "w"))
    f:write('{"resources":[{"name":"x!","tenant":"nope"}]}')
    f:close()
    local out, code = sh("lua5.4 " .. emulator.BIN .. " --config " .. path .. " --port 0 --state-dir " ..
      emulator.state_dir())
    assert.equal(2, code)
    assert.matches("resources%[1%]%.name", out)
  end)

  it("starts in under a second and prints one ready line", function()
    local t0 = cqueues.monotime()
    local emu = emulator.start()
    local elapsed = cqueues.monotime() - t0
    finally(function() emu:stop() end)
    assert.is_true(elapsed < 1, ("start took %.3f s"):format(elapsed))
    assert.matches("^https://localhost:%d+$", emu.authority)
    assert.matches("^http://127%.0%.0%.1:%d+$", emu.imds)
    assert.matches("^https://localhost:%d+$", emu.resources.signalr1.endpoint)
    assert.matches("^/subscriptions/.+/providers/Microsoft%.SignalRService/SignalR/signalr1$",
      emu.resources.signalr1.resource_id)
    assert.equal(emu.world.tenant_id, emu.resources.signalr1.tenant_id)
    assert.truthy(io.open(emu.ca_file, "r"))
  end)
end)

describe("signalr-emulator listeners", function()
  local emu
  setup(function() emu = emulator.start() end)
  teardown(function() emu:stop() end)

  it("answers health on every port over TLS verified with the CA file", function()
    for _, url in ipairs { emu.authority, emu.resources.signalr1.endpoint } do
      local status = emu:request { method = "HEAD", url = url .. "/api/health?api-version=2022-06-01" }
      assert.equal(200, status)
      status = emu:request { method = "GET", url = url .. "/api/health" }
      assert.equal(200, status)
    end
    local status = emu:request { method = "HEAD", url = emu.resources.signalr1.endpoint .. "/api/v1/health" }
    assert.equal(200, status)
  end)

  it("fails TLS verification for a client that does not trust the CA", function()
    local status, err = emulator.http { method = "GET", url = emu.authority .. "/api/health" }
    assert.is_nil(status)
    assert.truthy(err)
  end)

  it("serves both 127.0.0.1 and ::1 for localhost", function()
    local port = emu.resources.signalr1.endpoint:match(":(%d+)$")
    local out, code = sh(("curl -sS -o /dev/null -w '%%{http_code}' --cacert %s https://127.0.0.1:%s/api/health")
      :format(emu.ca_file, port))
    assert.equal(0, code)
    assert.equal("200", out)
    local v6 = io.open("/proc/net/if_inet6", "r")
    if v6 then
      v6:close()
      out, code = sh(("curl -sS -o /dev/null -w '%%{http_code}' --cacert %s 'https://[::1]:%s/api/health'")
        :format(emu.ca_file, port))
      assert.equal(0, code)
      assert.equal("200", out)
    end
  end)

  it("answers 404 with an error body for unknown routes and 405 with Allow for wrong methods", function()
    local status, _, body = emu:request { method = "GET", url = emu.resources.signalr1.endpoint .. "/no/such/route" }
    assert.equal(404, status)
    assert.equal("NotFound", cjson.decode(body).code)
    local headers
    status, headers = emu:request { method = "PATCH", url = emu.resources.signalr1.endpoint .. "/api/health" }
    assert.equal(405, status)
    assert.matches("GET", headers:get("allow"))
  end)

  it("refuses an oversized chunked body with 413 and keeps serving", function()
    local big = emulator.state_dir() .. "/big-body.txt"
    local f = assert(io.open(big, "wb"))
    f:write(("x"):rep(2 * 1024 * 1024))
    f:close()
    local out, code = sh(("curl -sS -o /dev/null -w '%%{http_code}' --cacert %s -H 'Transfer-Encoding: chunked' " ..
      "--data-binary @%s '%s/api/hubs/chat/:send?api-version=2022-06-01'"):format(emu.ca_file, big,
      emu.resources.signalr1.endpoint))
    assert.equal(0, code, out)
    assert.equal("413", out)
    assert.equal(200, (emu:request { method = "GET", url = emu.resources.signalr1.endpoint .. "/api/health" }))
  end)

  it("survives clients that vanish in the middle of a request", function()
    local cs = require "cqueues.socket"
    local port = tonumber(emu.resources.signalr1.endpoint:match(":(%d+)$"))
    for _, partial in ipairs {
      "POST /api/hubs/chat/:send?api-version=2022-06-01 HTTP/1.1\r\nHost: localhost\r\n" ..
        "Content-Length: 100000\r\n\r\n{\"target\"",
      "GET /api/health HTTP/1.1\r\nHost: loc",
      "POST /nope HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    } do
      local sock = assert(cs.connect { host = "127.0.0.1", port = port })
      assert(sock:starttls(emulator.client_context(emu.ca_file)))
      assert(sock:xwrite(partial, "bn"))
      sock:close()
    end
    for _ = 1, 3 do
      assert.equal(200, (emu:request { method = "GET", url = emu.resources.signalr1.endpoint .. "/api/health",
          timeout = 5 }))
    end
  end)

  it("logs one line per request with method, path, status, never a query or header value", function()
    local secret_query = "access_token=TOPSECRET" .. os.time()
    emu:request { method = "GET", url = emu.resources.signalr1.endpoint .. "/api/health?" .. secret_query,
      headers = { authorization = "Bearer HEADERSECRET", ["x-custom"] = "CUSTOMVALUE" } }
    local status = emu:admin("GET", "/admin/counters")
    assert.equal(200, status)
    local log = emu:log()
    local lines = 0
    for line in log:gmatch("[^\n]+") do
      if line:find("GET /api/health", 1, true) and line:find(" 200 ", 1, true) then lines = lines + 1 end
    end
    assert.is_true(lines >= 1)
    assert.falsy(log:find("TOPSECRET", 1, true))
    assert.falsy(log:find("HEADERSECRET", 1, true))
    assert.falsy(log:find("CUSTOMVALUE", 1, true))
    assert.falsy(log:find(emu.admin_secret, 1, true))
    assert.falsy(log:find(emu.world.access_keys[1], 1, true))
  end)
end)

describe("signalr-emulator stop", function()
  for _, sig in ipairs { "INT", "TERM" } do
    it("stops cleanly with exit status 0 on SIG" .. sig .. ", closing connected clients", function()
      local emu = emulator.start()
      local ok, how, code = emu:stop(sig)
      assert.is_true(ok, ("exit: %s %s"):format(tostring(how), tostring(code)))
      assert.matches("signal %d+: stopping", emu:log())
      assert.matches("stopped", emu:log())
    end)
  end
end)

describe("signalr-emulator --http", function()
  it("serves plain HTTP when asked, without a CA file", function()
    local emu = emulator.start { args = { "--http" } }
    finally(function() emu:stop() end)
    assert.matches("^http://localhost:%d+$", emu.authority)
    assert.is_nil(emu.ca_file)
    local status = emulator.http { method = "GET", url = emu.resources.signalr1.endpoint .. "/api/health" }
    assert.equal(200, status)
  end)
end)
