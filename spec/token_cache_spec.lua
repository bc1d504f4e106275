-- The Entra token cache, driven without I/O: each credential's token op is stepped by hand
-- with a clock the spec moves (csrc/token_cache.c, csrc/credential.c).
local signalr = require "signalr"
local H = require "spec.helpers.entra"

local function secret_cred()
  return assert(signalr.credential.client_secret { tenant_id = "tenant-a", client_id = "app-1",
    client_secret = "not-a-real-secret-0001" })
end

-- Answers every token request with a new token "tok-<n>" living `life` seconds.
local function issuer(life, extra)
  return function(req, i)
    assert.truthy(req.url:find("/oauth2/v2.0/token", 1, true))
    return H.token_response("tok-" .. i, life, extra)
  end
end

-- token, number of requests made | nil, number of requests, err. last_expiry: the token's.
local last_expiry
local function token(cred, clock, respond)
  local r = { H.run(cred:token_op(), clock, respond) }
  local trace = r[#r]
  if r[1] == "done" then
    last_expiry = r[3]
    return r[2], #trace.requests
  end
  return nil, #trace.requests, r[2]
end

describe("token cache", function()
  it("serves a fresh token without a request", function()
    local cred, clock = secret_cred(), H.clock()
    local t, n = token(cred, clock, issuer(3600))
    assert.same({ "tok-1", 1, clock.now + 3600 }, { t, n, last_expiry })
    clock.advance(60)
    local t2, n2 = token(cred, clock, issuer(3600))
    assert.same({ "tok-1", 0 }, { t2, n2 })
    assert.equal(1, cred:acquisitions())
  end)

  it("refreshes when less than 5 minutes remain, not before", function()
    local cred, clock = secret_cred(), H.clock()
    local respond = issuer(3600)
    token(cred, clock, respond)
    clock.advance(3600 - 301)
    assert.same({ "tok-1", 0 }, { token(cred, clock, respond) })
    clock.advance(2) -- 299 s left
    local t, n = token(cred, clock, function() return H.token_response("tok-2", 3600) end)
    assert.same({ "tok-2", 1 }, { t, n })
  end)

  it("refreshes once refresh_on (from refresh_in) has passed", function()
    local cred, clock = secret_cred(), H.clock()
    token(cred, clock, issuer(3600, { refresh_in = 600 }))
    clock.advance(599)
    assert.same({ "tok-1", 0 }, { token(cred, clock, issuer(3600)) })
    clock.advance(1)
    local t, n = token(cred, clock, function() return H.token_response("tok-2", 3600) end)
    assert.same({ "tok-2", 1 }, { t, n })
  end)

  it("refreshes long-lived managed identity tokens at half-life, app tokens 5 minutes before expiry", function()
    local env = { AZURE_POD_IDENTITY_AUTHORITY_HOST = "http://127.0.0.1:9" }
    local mi = assert(signalr.credential.managed_identity { env = env })
    local clock = H.clock()
    local mi_issuer = function(_, i)
      return H.json(200, { access_token = "mi-" .. i, expires_in = "86400", token_type = "Bearer" })
    end
    assert.same({ "mi-1", 1 }, { token(mi, clock, mi_issuer) })
    clock.advance(43199)
    assert.same({ "mi-1", 0 }, { token(mi, clock, mi_issuer) })
    clock.advance(1)
    assert.same({ "mi-2", 1 }, { token(mi, clock, function() return mi_issuer(nil, 2) end) })

    local app, c2 = secret_cred(), H.clock()
    token(app, c2, issuer(86400))
    c2.advance(86400 - 301)
    assert.same({ "tok-1", 0 }, { token(app, c2, issuer(86400)) })
  end)

  it("serves the still-valid token when a refresh fails, and waits 30 s before trying again", function()
    local cred, clock = secret_cred(), H.clock()
    token(cred, clock, issuer(3600))
    clock.advance(3600 - 200) -- refresh due, 200 s of life left
    local failing = function() return H.json(503, { error = "temporarily_unavailable" }) end
    local t, n = token(cred, clock, failing)
    assert.equal("tok-1", t)
    assert.equal(3, n) -- one refresh: 3 attempts on a transient failure
    local after = clock.now
    -- within 30 s of the failure: no request at all
    clock.now = after + 29
    assert.same({ "tok-1", 0 }, { token(cred, clock, failing) })
    clock.now = after + 30
    assert.same({ "tok-2", 1 }, { token(cred, clock, function() return H.token_response("tok-2", 3600) end) })
  end)

  it("fails when the token has expired and the refresh fails", function()
    local cred, clock = secret_cred(), H.clock()
    token(cred, clock, issuer(3600))
    clock.advance(3600)
    local t, n, err = token(cred, clock, function()
      return H.entra_error(401, 7000215, "invalid_client", "Invalid client secret provided.")
    end)
    assert.is_nil(t)
    assert.equal(1, n) -- an authentication failure is not retried
    assert.equal("authentication_failed", err.kind)
    assert.equal("AADSTS7000215", err.code)
    assert.equal(401, err.status)
  end)

  it("never hands out a token with less than 30 s to live", function()
    local cred, clock = secret_cred(), H.clock()
    token(cred, clock, issuer(3600))
    clock.advance(3600 - 29)
    local t, n = token(cred, clock, function() return H.token_response("tok-2", 3600) end)
    assert.same({ "tok-2", 1 }, { t, n })
  end)

  it("runs one refresh per entry: others use the valid token, or wait for the new one", function()
    local cred, clock = secret_cred(), H.clock()
    token(cred, clock, issuer(3600))
    clock.advance(3600 - 100) -- refresh due
    local first = cred:token_op()
    local kind, req = first:step(clock.now)
    assert.equal("request", kind)
    assert.truthy(req.url:find("oauth2", 1, true))
    -- while that request is out, another op is served from the cache at once
    local second = cred:token_op()
    local k2, t2 = second:step(clock.now)
    assert.same({ "done", "tok-1" }, { k2, t2 })
    local k1, t1 = first:step(clock.now, H.token_response("tok-2", 3600))
    assert.same({ "done", "tok-2" }, { k1, t1 })
    assert.same({ "tok-2", 0 }, { token(cred, clock, issuer(3600)) })
  end)

  it("makes a waiter sleep while another op fetches an expired token, then hands it the new one", function()
    local cred, clock = secret_cred(), H.clock()
    local first = cred:token_op()
    assert.equal("request", (first:step(clock.now)))
    local waiter = cred:token_op()
    local kind, seconds = waiter:step(clock.now)
    assert.equal("sleep", kind)
    assert.is_true(seconds > 0 and seconds <= 0.1)
    assert.equal("done", (first:step(clock.now, H.token_response("tok-A", 3600))))
    local k2, t2 = waiter:step(clock.now + seconds)
    assert.same({ "done", "tok-A" }, { k2, t2 })
    assert.equal(1, cred:acquisitions())
  end)

  it("frees the refresh slot when an op is abandoned mid-flight", function()
    local cred, clock = secret_cred(), H.clock()
    local op = cred:token_op()
    assert.equal("request", (op:step(clock.now)))
    op = nil -- luacheck: ignore 311
    collectgarbage()
    collectgarbage() -- __gc destroys the op, which gives up its claim
    local t, n = token(cred, clock, issuer(3600))
    assert.same({ "tok-1", 1 }, { t, n })
  end)

  it("keeps caches apart: two credentials with the same client id never share a token", function()
    local a = secret_cred()
    local b = assert(signalr.credential.client_secret { tenant_id = "tenant-a", client_id = "app-1",
      client_secret = "a-different-secret-0002" })
    local clock = H.clock()
    token(a, clock, issuer(3600))
    local t, n = token(b, clock, function() return H.token_response("tok-b", 3600) end)
    assert.same({ "tok-b", 1 }, { t, n })
  end)

  it("caches a function credential's token until its expiry, and not at all without one", function()
    local calls = 0
    local clock = H.clock()
    local with_exp = signalr.credential.from_function(function()
      calls = calls + 1
      return "fn-" .. calls, clock.now + 3600
    end)
    assert.same({ "fn-1", 0 }, { token(with_exp, clock, issuer(1)) })
    assert.same({ "fn-1", 0 }, { token(with_exp, clock, issuer(1)) })
    assert.equal(1, calls)
    local without = signalr.credential.from_function(function()
      calls = calls + 1
      return "nf-" .. calls
    end)
    assert.equal("nf-2", (token(without, clock, issuer(1))))
    assert.equal("nf-3", (token(without, clock, issuer(1))))
  end)
end)
