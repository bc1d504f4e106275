-- Access-key negotiate: the client URL and access token, checked with verifiers that
-- share no code with the SDK (luaossl HMAC, PyJWT).
local signalr = require "signalr"
local token = require "spec.helpers.token"

local KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
local CS = "Endpoint=https://demo.service.signalr.net;AccessKey=" .. KEY .. ";Version=1.0;"

local function fixed_clock(t) return function() return t end end

describe("negotiate with an access key", function()
  local svc
  before_each(function()
    svc = assert(signalr.new { connection_string = CS, clock = fixed_clock(1700000000.75) })
  end)

  it("returns the client URL and a token the service accepts", function()
    local neg = assert(svc:negotiate("Chat"))
    assert.equal("https://demo.service.signalr.net/client/?hub=chat", neg.url)
    local header, claims = token.decode(neg.accessToken)
    assert.same({ alg = "HS256", typ = "JWT" }, header)
    assert.equal("https://demo.service.signalr.net/client/?hub=chat", claims.aud)
    assert.equal("azure-signalr", claims.iss)
    assert.equal(1700000000, claims.iat)
    assert.equal(1700000000, claims.nbf)
    assert.equal(3600, claims.exp - claims.iat)
    assert.is_true(token.verify(neg.accessToken, KEY))
  end)

  it("is verified by PyJWT with the audience, and refused by PyJWT with another key", function()
    local now = os.time()
    local live = assert(signalr.new { connection_string = CS })
    local neg = assert(live:negotiate("chat", { user_id = "alice", roles = { "admin", "mod" } }))
    local claims = assert(token.pyjwt_decode(neg.accessToken, KEY,
      "https://demo.service.signalr.net/client/?hub=chat"))
    assert.equal("alice", claims["asrs.s.uid"])
    assert.same({ "admin", "mod" }, claims.role)
    assert.is_true(claims.iat >= now - 1 and claims.iat <= now + 1)
    local _, why = token.pyjwt_decode(neg.accessToken, KEY .. "x",
      "https://demo.service.signalr.net/client/?hub=chat")
    assert.equal("InvalidSignatureError", why)
    local _, why_aud = token.pyjwt_decode(neg.accessToken, KEY, "https://other/client/?hub=chat")
    assert.equal("InvalidAudienceError", why_aud)
  end)

  it("fails verification with the wrong key", function()
    local neg = assert(svc:negotiate("chat"))
    assert.is_false(token.verify(neg.accessToken, "another-key"))
    assert.is_false(token.verify(neg.accessToken, KEY:sub(1, -2)))
  end)

  it("puts user_id in asrs.s.uid and nameid, a single role as a string", function()
    local neg = assert(svc:negotiate("chat", { user_id = "alice", roles = { "admin" } }))
    local _, claims = token.decode(neg.accessToken)
    assert.equal("alice", claims["asrs.s.uid"])
    assert.equal("alice", claims.nameid)
    assert.equal("admin", claims.role)
  end)

  it("merges options.roles and claims.role into one array", function()
    local neg = assert(svc:negotiate("chat", { roles = "a", claims = { role = { "b", "c" } } }))
    local _, claims = token.decode(neg.accessToken)
    assert.same({ "a", "b", "c" }, claims.role)
  end)

  it("writes strings, numbers, booleans and arrays as JSON types", function()
    local neg = assert(svc:negotiate("chat", { claims = {
      tier = "gold", level = 7, ratio = 0.25, vip = true, banned = false,
      tags = { "x", "y" }, mixed = { 1, "two", true }, empty = {},
      unicode = "héllo \"quoted\" \n",
    } }))
    local _, claims = token.decode(neg.accessToken)
    assert.equal("gold", claims.tier)
    assert.equal(7, claims.level)
    assert.equal(0.25, claims.ratio)
    assert.is_true(claims.vip)
    assert.is_false(claims.banned)
    assert.same({ "x", "y" }, claims.tags)
    assert.same({ 1, "two", true }, claims.mixed)
    assert.same({}, claims.empty)
    assert.equal("héllo \"quoted\" \n", claims.unicode)
    assert.is_true(token.verify(neg.accessToken, KEY))
  end)

  it("renames reserved claim names to asrs.u.<name> so they cannot override the SDK's", function()
    local reserved = { "aud", "exp", "iat", "nbf", "iss", "actort", "acr", "azp", "c_hash", "jti", "nonce" }
    local claims_in = {}
    for _, name in ipairs(reserved) do claims_in[name] = "evil-" .. name end
    local neg = assert(svc:negotiate("chat", { claims = claims_in }))
    local _, claims = token.decode(neg.accessToken)
    for _, name in ipairs(reserved) do
      assert.equal("evil-" .. name, claims["asrs.u." .. name])
    end
    assert.equal("https://demo.service.signalr.net/client/?hub=chat", claims.aud)
    assert.equal("azure-signalr", claims.iss)
    assert.equal(3600, claims.exp - claims.iat)
  end)

  it("honours lifetime and HS512", function()
    local neg = assert(svc:negotiate("chat", { lifetime = 120, algorithm = "HS512" }))
    local header, claims = token.decode(neg.accessToken)
    assert.equal("HS512", header.alg)
    assert.equal(120, claims.exp - claims.iat)
    assert.is_true(token.verify(neg.accessToken, KEY))
    local live = assert(signalr.new { connection_string = CS })
    local fresh = assert(live:negotiate("chat", { algorithm = "HS512" }))
    assert.truthy(token.pyjwt_decode(fresh.accessToken, KEY, claims.aud, { "HS512" }))
    local _, why = token.pyjwt_decode(fresh.accessToken, KEY, claims.aud, { "HS256" })
    assert.equal("InvalidAlgorithmError", why)
  end)

  it("prefixes the hub with the application name, lower-cased", function()
    local app = assert(signalr.new { connection_string = CS, application = "MyApp" })
    local neg = assert(app:negotiate("Chat"))
    assert.equal("https://demo.service.signalr.net/client/?hub=myapp_chat", neg.url)
    local _, claims = token.decode(neg.accessToken)
    assert.equal("https://demo.service.signalr.net/client/?hub=myapp_chat", claims.aud)
  end)

  it("uses ClientEndpoint for the URL and the service host (no port) for the audience", function()
    local cs = "Endpoint=https://x.service.signalr.net:444;AccessKey=" .. KEY ..
      ";ClientEndpoint=https://proxy.contoso.com;Version=1.0"
    local s = assert(signalr.new { connection_string = cs, application = "MyApp" })
    local neg = assert(s:negotiate("Chat"))
    assert.equal("https://proxy.contoso.com/client/?hub=myapp_chat", neg.url)
    local _, claims = token.decode(neg.accessToken)
    assert.equal("https://x.service.signalr.net/client/?hub=myapp_chat", claims.aud)
  end)

  it("keeps the port of the endpoint in the client URL", function()
    local s = assert(signalr.new { connection_string = "Endpoint=http://localhost;Port=8888;AccessKey=" .. KEY })
    local neg = assert(s:negotiate("chat"))
    assert.equal("http://localhost:8888/client/?hub=chat", neg.url)
    local _, claims = token.decode(neg.accessToken)
    assert.equal("http://localhost/client/?hub=chat", claims.aud)
  end)

  it("works with signalr.credential.access_key and an endpoint", function()
    local s = assert(signalr.new { endpoint = "https://demo.service.signalr.net/",
                                   credential = signalr.credential.access_key(KEY) })
    local neg = assert(s:negotiate("chat"))
    assert.equal("https://demo.service.signalr.net/client/?hub=chat", neg.url)
    assert.is_true(token.verify(neg.accessToken, KEY))
  end)

  it("refuses a token over 4096 characters instead of truncating it", function()
    local neg, err = svc:negotiate("chat", { claims = { big = string.rep("x", 3000) } })
    assert.is_nil(neg)
    assert.equal("invalid_argument", err.kind)
    assert.matches("4096", tostring(err))
    assert.truthy(svc:negotiate("chat", { claims = { big = string.rep("x", 2500) } }))
  end)
end)

describe("negotiate with bad arguments", function()
  local svc = assert(signalr.new { connection_string = CS })

  it("raises for a hub that is not a string", function()
    local prefix = "bad argument #1 to 'negotiate' (hub must be a string, got "
    assert.has_error(function() svc:negotiate() end, prefix .. "no value)")
    assert.has_error(function() svc:negotiate(nil) end, prefix .. "nil)")
    assert.has_error(function() svc:negotiate(42) end, prefix .. "number)")
  end)

  it("returns invalid_argument for hub names the service would refuse", function()
    for _, hub in ipairs { "", "1chat", "chat room", "chat-room", "chät", string.rep("a", 129) } do
      local neg, err = svc:negotiate(hub)
      assert.is_nil(neg)
      assert.equal("invalid_argument", err.kind)
      assert.matches("hub name", err.message)
    end
    assert.truthy(svc:negotiate(string.rep("a", 128)))
    assert.truthy(svc:negotiate("A_b`c,d.e[f]"))
  end)

  it("raises for options of the wrong type and unknown options", function()
    assert.has_error(function() svc:negotiate("chat", "alice") end,
      "bad argument #2 to 'negotiate' (options must be a table, got string)")
    assert.has_error(function() svc:negotiate("chat", { userid = "a" }) end)
    assert.has_error(function() svc:negotiate("chat", { user_id = 5 }) end,
      "bad argument #2 to 'negotiate' (options.user_id must be a string, got number)")
    assert.has_error(function() svc:negotiate("chat", { roles = { "a", 1 } }) end)
    assert.has_error(function() svc:negotiate("chat", { lifetime = "60" }) end)
    assert.has_error(function() svc:negotiate("chat", { claims = "x" }) end)
  end)

  it("raises for claims holding functions, nested tables, maps or non-string keys", function()
    local bad = {
      { f = print }, { t = { { 1 } } }, { t = { a = 1 } }, { t = { 1, nil, 3 } },
      { [1] = "x" }, { co = coroutine.create(print) },
    }
    for _, claims in ipairs(bad) do
      local ok, msg = pcall(svc.negotiate, svc, "chat", { claims = claims })
      assert.is_false(ok)
      assert.matches("claims", msg)
    end
  end)

  it("returns invalid_argument for lifetimes that are not whole positive seconds", function()
    for _, lifetime in ipairs { 0, -1, 1.5, 0 / 0, math.huge, 366 * 24 * 3600 } do
      local neg, err = svc:negotiate("chat", { lifetime = lifetime })
      assert.is_nil(neg)
      assert.equal("invalid_argument", err.kind)
      assert.matches("lifetime", err.message)
    end
  end)

  it("returns invalid_argument for an unknown algorithm, empty user id, reserved or duplicate claims", function()
    local cases = {
      { { algorithm = "RS256" }, "algorithm" },
      { { user_id = "" }, "user_id" },
      { { claims = { ["asrs.s.uid"] = "bob" } }, "reserved" },
      { { user_id = "a", claims = { nameid = "b" } }, "twice" },
      { { claims = { [""] = "x" } }, "empty" },
      { { claims = { bad = "\255" } }, "UTF%-8" },
      { { claims = { n = 0 / 0 } }, "NaN" },
    }
    for _, case in ipairs(cases) do
      local neg, err = svc:negotiate("chat", case[1])
      assert.is_nil(neg)
      assert.equal("invalid_argument", err.kind)
      assert.matches(case[2], err.message)
    end
  end)

  it("does not crash on many claims", function()
    local claims = {}
    for i = 1, 100 do claims["c" .. i] = i end
    local neg, err = svc:negotiate("chat", { claims = claims })
    assert.is_nil(neg)
    assert.matches("too many claims", err.message)
  end)
end)
