-- signalr.new, credentials and objects: argument checking, tostring without secrets,
-- idempotent close/__gc.
local signalr = require "signalr"

local KEY = "S3cretKeyValue0123456789abcdefghijklmnopqrs="
local CS = "Endpoint=https://x.service.signalr.net;AccessKey=" .. KEY .. ";Version=1.0;"

describe("signalr.new", function()
  it("raises for arguments of the wrong type or shape, naming them", function()
    local cases = {
      { nil, "options must be a table, got nil" },
      { "Endpoint=...", "options must be a table, got string" },
      { {}, "options.connection_string or options.endpoint is required" },
      { { connection_string = CS, endpoint = "https://x" }, "not both" },
      { { endpoint = "https://x" }, "options.credential is required" },
      { { endpoint = "https://x", credential = "key" }, "options.credential must be a credential" },
      { { connection_string = CS, credential = signalr.credential.access_key("k") }, "carries its own" },
      { { connection_string = CS, application = 5 }, "options.application must be a string" },
      { { connection_string = CS, timeout = -1 }, "options.timeout" },
      { { connection_string = CS, timeout = "5" }, "options.timeout must be a number" },
      { { connection_string = CS, max_retries = 1.5 }, "options.max_retries" },
      { { connection_string = CS, clock = 5 }, "options.clock must be a function" },
      { { connection_string = CS, conection_string = CS }, "unknown option 'conection_string'" },
      { { [1] = CS }, "option names must be strings" },
    }
    for _, case in ipairs(cases) do
      local ok, msg = pcall(signalr.new, case[1])
      assert.is_false(ok)
      assert.matches("bad argument #1 to", msg, 1, true)
      assert.matches(case[2], msg, 1, true)
    end
  end)

  it("returns invalid_argument for a bad endpoint or application name", function()
    local svc, err = signalr.new { endpoint = "ftp://x", credential = signalr.credential.access_key("k") }
    assert.is_nil(svc)
    assert.equal("invalid_argument", err.kind)
    assert.matches("endpoint", err.message)
    svc, err = signalr.new { connection_string = CS, application = "my-app" }
    assert.is_nil(svc)
    assert.matches("application name is not valid", err.message)
  end)

  it("describes its endpoints", function()
    local svc = assert(signalr.new { connection_string = CS, application = "App" })
    assert.same({
      endpoint = "https://x.service.signalr.net",
      client_endpoint = "https://x.service.signalr.net",
      server_endpoint = "https://x.service.signalr.net",
      audience_base = "https://x.service.signalr.net",
      application = "app",
      access_key_url = "https://x.service.signalr.net/api/v1/auth/accessKey",
      client_url = "https://x.service.signalr.net/client/?hub=app_chat",
      audience = "https://x.service.signalr.net/client/?hub=app_chat",
      auth = "access_key",
    }, svc:info("Chat"))
  end)

  it("never shows a secret in tostring", function()
    local svc = assert(signalr.new { connection_string = CS })
    assert.equal("signalr.service (https://x.service.signalr.net)", tostring(svc))
    local cred = signalr.credential.access_key(KEY)
    assert.equal("signalr.credential.access_key", tostring(cred))
    assert.equal("access_key", cred:kind())
  end)

  it("closes idempotently and refuses use after close", function()
    local svc = assert(signalr.new { connection_string = CS })
    svc:close()
    svc:close()
    assert.equal("signalr.service (closed)", tostring(svc))
    assert.has_error(function() svc:negotiate("chat") end)
    svc = nil
    collectgarbage()
    collectgarbage()
  end)

  it("closes hubs and batches idempotently (also as to-be-closed values)", function()
    local svc = assert(signalr.new { connection_string = CS })
    local hub, batch = svc:hub("chat"), svc:batch()
    local bhub = batch:hub("chat")
    for _, obj in ipairs { hub, batch, bhub } do
      local close = getmetatable(obj).__close
      close(obj)
      close(obj)
    end
    assert.has_error(function() hub:send_to_all("x", {}) end)
    assert.has_error(function() bhub:send_to_all("x", {}) end)
    assert.has_error(function() batch:run() end)
    -- the service itself is still usable
    assert.truthy(svc:negotiate("chat"))
  end)

  it("keeps its credential alive after the caller drops it", function()
    local svc = assert(signalr.new { endpoint = "https://x", credential = signalr.credential.access_key(KEY) })
    collectgarbage()
    collectgarbage()
    local token = require "spec.helpers.token"
    assert.is_true(token.verify(svc:negotiate("chat").accessToken, KEY))
  end)

  it("supports to-be-closed variables on Lua 5.4", function()
    if _VERSION ~= "Lua 5.4" then return end
    local chunk = assert(load([[
      local signalr, cs = ...
      local outer
      do
        local svc <close> = assert(signalr.new { connection_string = cs })
        outer = svc
      end
      return tostring(outer)
    ]]))
    assert.equal("signalr.service (closed)", chunk(signalr, CS))
  end)
end)

describe("signalr.credential.access_key", function()
  it("raises for a key that is not a string and refuses an empty one", function()
    assert.has_error(function() signalr.credential.access_key() end,
      "bad argument #1 to 'access_key' (access key must be a string, got no value)")
    assert.has_error(function() signalr.credential.access_key(123) end)
    local cred, err = signalr.credential.access_key("")
    assert.is_nil(cred)
    assert.equal("invalid_argument", err.kind)
  end)
end)

describe("error objects", function()
  it("carry kind and message, and print as one sentence", function()
    local _, err = signalr.new { connection_string = "AccessKey=" .. KEY }
    assert.is_true(signalr.is_error(err))
    assert.is_false(signalr.is_error({ kind = "x" }))
    assert.is_false(signalr.is_error("x"))
    assert.equal("invalid_argument", err.kind)
    assert.equal(err.message, tostring(err))
    assert.is_nil(tostring(err):find("\n"))
  end)
end)
