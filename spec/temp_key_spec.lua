-- The temporary access key behind Entra negotiate, with a scripted driver and a clock the
-- spec moves (csrc/temp_key.c, csrc/l_service_entra.c): how often it is fetched, what
-- happens when fetching fails, and connection strings that name Entra credentials.
local signalr = require "signalr"
local hmac = require "openssl.hmac"
local H = require "spec.helpers.entra"

local ENDPOINT = "https://demo.service.signalr.net"
local KEY_URL = ENDPOINT .. "/api/v1/auth/accessKey"

-- A fake Entra + accessKey endpoint: counts requests, answers from `self.key` / `self.token`.
local function fake()
  local f = { token_requests = 0, key_requests = 0, key_n = 0, token_life = 86400, key_answer = nil }
  f.respond = function(req)
    if req.url:find("/oauth2/v2.0/token", 1, true) then
      f.token_requests = f.token_requests + 1
      if f.token_answer then return f.token_answer(req) end
      return H.token_response("entra-" .. f.token_requests, f.token_life)
    end
    assert.equal(KEY_URL, req.url)
    assert.equal("Bearer entra-" .. f.token_requests, req.headers.Authorization)
    f.key_requests = f.key_requests + 1
    if f.key_answer then return f.key_answer(req) end
    f.key_n = f.key_n + 1
    return H.json(200, { KeyId = "kid-" .. f.key_n, AccessKey = "temp-key-" .. f.key_n })
  end
  return f
end

local function service(clock, f, extra)
  local cred = assert(signalr.credential.client_secret { tenant_id = "t1", client_id = "c1",
    client_secret = "secret-value-1" })
  local o = { endpoint = ENDPOINT, credential = cred, clock = clock.fn }
  for k, v in pairs(extra or {}) do o[k] = v end
  local svc = assert(signalr.new(o))
  local trace = { requests = {}, sleeps = {} }
  svc:set_driver(H.driver(clock, f.respond, trace))
  return svc, trace
end

local function kid_of(neg) return (H.jwt(neg.accessToken).kid) end

local function signed_with(token, key)
  local h, p, s = token:match("^([^.]+)%.([^.]+)%.([^.]+)$")
  local mac = hmac.new(key, "sha256"):final(h .. "." .. p)
  return H.b64url(mac) == s
end

describe("Entra negotiate and the temporary access key", function()
  it("1,000 negotiates make one token request and one key request; tokens carry kid = KeyId", function()
    local clock, f = H.clock(), fake()
    local svc = service(clock, f)
    local last
    for i = 1, 1000 do
      last = assert(svc:negotiate("chat", { user_id = "user-" .. i, roles = { "a", "b" }, claims = { tier = "gold" } }))
    end
    assert.same({ 1, 1 }, { f.token_requests, f.key_requests })
    local header, claims = H.jwt(last.accessToken)
    assert.same({ alg = "HS256", typ = "JWT", kid = "kid-1" }, header)
    assert.equal("user-1000", claims["asrs.s.uid"])
    assert.same({ "a", "b" }, claims.role)
    assert.equal("gold", claims.tier)
    assert.equal(ENDPOINT .. "/client/?hub=chat", claims.aud)
    assert.equal(ENDPOINT .. "/client/?hub=chat", last.url)
    assert.is_true(signed_with(last.accessToken, "temp-key-1"))
    local st = svc:entra_status()
    assert.same({ "entra", "kid-1", 1, clock.now }, { st.auth, st.key_id, st.key_fetches, st.key_issued_at })
  end)

  it("fetches a new key after 55 minutes, or after options.temporary_key.refresh_after", function()
    local clock, f = H.clock(), fake()
    local svc = service(clock, f)
    assert.equal("kid-1", kid_of(assert(svc:negotiate("chat"))))
    clock.advance(55 * 60 - 1)
    assert.equal("kid-1", kid_of(assert(svc:negotiate("chat"))))
    clock.advance(1)
    assert.equal("kid-2", kid_of(assert(svc:negotiate("chat"))))
    assert.same({ 1, 2 }, { f.token_requests, f.key_requests })

    local c2, f2 = H.clock(), fake()
    local svc2 = service(c2, f2, { temporary_key = { refresh_after = 600 } })
    assert.equal("kid-1", kid_of(assert(svc2:negotiate("chat"))))
    c2.advance(600)
    assert.equal("kid-2", kid_of(assert(svc2:negotiate("chat"))))
  end)

  it("keeps signing with the valid key when a refresh fails, trying again after 30 s", function()
    local clock, f = H.clock(), fake()
    local svc, trace = service(clock, f)
    assert(svc:negotiate("chat"))
    clock.advance(56 * 60)
    f.key_answer = function() return H.json(503, { error = "busy" }) end
    assert.equal("kid-1", kid_of(assert(svc:negotiate("chat"))))
    assert.equal(2, f.key_requests) -- one attempt, no waiting: negotiate is not held up
    assert.same({}, trace.sleeps)
    clock.advance(29)
    assert.equal("kid-1", kid_of(assert(svc:negotiate("chat"))))
    assert.equal(2, f.key_requests)
    f.key_answer = nil
    clock.advance(1)
    assert.equal("kid-2", kid_of(assert(svc:negotiate("chat"))))
  end)

  it("fails closed once the key is 90 minutes old: 3 attempts 3 s apart, then a clear error", function()
    local clock, f = H.clock(), fake()
    local svc, trace = service(clock, f)
    assert(svc:negotiate("chat"))
    f.key_answer = function() return { error = "connect", message = "connection refused" } end
    clock.advance(90 * 60)
    local neg, err = svc:negotiate("chat")
    assert.is_nil(neg)
    assert.equal("network", err.kind)
    assert.matches("no valid temporary access key", err.message, 1, true)
    assert.matches(KEY_URL, err.message, 1, true)
    assert.equal(1 + 3, f.key_requests)
    assert.same({ 3, 3 }, trace.sleeps)
    -- right after: no new attempt, the same error
    neg, err = svc:negotiate("chat")
    assert.is_nil(neg)
    assert.equal(4, f.key_requests)
    assert.matches("next attempt in", err.message, 1, true)
  end)

  it("on 403 names the roles that could, does not retry, and waits 5 minutes", function()
    local clock, f = H.clock(), fake()
    local svc = service(clock, f)
    f.key_answer = function()
      return H.json(403, { error = "Forbidden", message = "Principal is not allowed to perform auth/accessKey/action" })
    end
    local neg, err = svc:negotiate("chat")
    assert.is_nil(neg)
    assert.equal("forbidden", err.kind)
    assert.equal(403, err.status)
    assert.equal(1, f.key_requests)
    for _, s in ipairs { "SignalR App Server", "SignalR Service Owner", "30 minutes" } do
      assert.matches(s, err.hint, 1, true)
      assert.matches(s, tostring(err), 1, true)
    end
    H.no_secret(H.error_text(err), { "secret-value-1", "entra-1" })
    clock.advance(299)
    assert.is_nil(svc:negotiate("chat"))
    assert.equal(1, f.key_requests)
    f.key_answer = nil
    clock.advance(1)
    assert.equal("kid-1", kid_of(assert(svc:negotiate("chat"))))
  end)

  it("on 401 drops the cached Entra token so the next round asks Entra again", function()
    local clock, f = H.clock(), fake()
    local svc = service(clock, f)
    f.key_answer = function() return H.json(401, { error = "Unauthorized" }) end
    local _, err = svc:negotiate("chat")
    assert.equal("unauthorized", err.kind)
    assert.matches("tenant", err.hint, 1, true)
    f.key_answer = nil
    clock.advance(300)
    assert(svc:negotiate("chat"))
    assert.same({ 2, 2 }, { f.token_requests, f.key_requests })
  end)

  it("parses the answer strictly: both KeyId and AccessKey, in a JSON object", function()
    for _, body in ipairs { '{"KeyId":"k"}', '{"AccessKey":"a"}', '{"KeyId":"","AccessKey":"a"}', "[1]", "not json" } do
      local clock, f = H.clock(), fake()
      local svc = service(clock, f)
      f.key_answer = function() return { status = 200, headers = {}, body = body } end
      local neg, err = svc:negotiate("chat")
      assert.is_nil(neg)
      assert.equal("service_error", err.kind)
      assert.equal(3, f.key_requests)
    end
  end)

  it("fails closed with the credential's own error when Entra refuses it", function()
    local clock, f = H.clock(), fake()
    local svc = service(clock, f)
    f.token_answer = function()
      return H.entra_error(401, 7000215, "invalid_client", "Invalid client secret provided.")
    end
    local neg, err = svc:negotiate("chat")
    assert.is_nil(neg)
    assert.equal("authentication_failed", err.kind)
    assert.equal("AADSTS7000215", err.code)
    assert.equal(0, f.key_requests)
    assert.equal(1, f.token_requests)
    H.no_secret(H.error_text(err), { "secret-value-1" })
  end)

  it("checks options.temporary_key", function()
    local clock, f = H.clock(), fake()
    assert.error_matches(function() service(clock, f, { temporary_key = { max_age = 6000 } }) end,
      "max_age must be between 0 and 5400")
    assert.error_matches(function() service(clock, f, { temporary_key = { refresh_after = 900, max_age = 600 } }) end,
      "refresh_after must be between 0 and 600")
    assert.error_matches(function() service(clock, f, { temporary_key = { refresh_after = 600, max_age = 600 } }) end,
      "less than max_age")
    assert.error_matches(function() service(clock, f, { temporary_key = { refresh = 1 } }) end,
      "unknown option 'temporary_key.refresh'")
    assert.error_matches(function()
      signalr.new { endpoint = ENDPOINT, credential = signalr.credential.access_key("k"), temporary_key = {} }
    end, "Microsoft Entra ID credentials only")
  end)

  it("svc:temporary_key_op() hands the fetch to a driver that steps it before negotiate", function()
    local clock, f = H.clock(), fake()
    local svc = service(clock, f)
    svc:set_driver(function() error("negotiate must not need the driver") end)
    local op = assert(svc:temporary_key_op())
    local kind = H.run(op, clock, f.respond)
    assert.equal("done", kind)
    assert.is_nil(svc:temporary_key_op()) -- fresh now
    assert.equal("kid-1", kid_of(assert(svc:negotiate("chat"))))
    clock.advance(55 * 60)
    op = assert(svc:temporary_key_op())
    assert.equal("done", (H.run(op, clock, f.respond)))
    assert.equal("kid-2", kid_of(assert(svc:negotiate("chat"))))
    local plain = signalr.new { endpoint = ENDPOINT, credential = signalr.credential.access_key("k") }
    assert.is_nil(plain:temporary_key_op())
  end)

  it("with svc:return_ops(true), negotiate returns the fetch op, then signs once it has run", function()
    local clock, f = H.clock(), fake()
    local svc = service(clock, f)
    svc:return_ops(true)
    local op = svc:negotiate("chat", { user_id = "u" })
    assert.matches("^signalr.op", tostring(op))
    assert.is_true(op:again())
    assert.equal("done", (H.run(op, clock, f.respond)))
    local neg = assert(svc:negotiate("chat", { user_id = "u" }))
    assert.equal("kid-1", kid_of(neg))
    assert.same({ 1, 1 }, { f.token_requests, f.key_requests })
    -- a failed refresh while the key is valid: the op is done, negotiate signs with the old key
    clock.advance(56 * 60)
    f.key_answer = function() return H.json(503, { error = "busy" }) end
    op = svc:negotiate("chat")
    assert.equal("done", (H.run(op, clock, f.respond)))
    assert.equal("kid-1", kid_of(assert(svc:negotiate("chat"))))
    -- no valid key and the fetch fails: the op fails with the reason
    clock.advance(35 * 60)
    op = svc:negotiate("chat")
    local kind, err = H.run(op, clock, f.respond)
    assert.equal("failed", kind)
    assert.equal(503, err.status)
  end)

  it("svc:get_token() returns the Entra token from the credential's cache", function()
    local clock, f = H.clock(), fake()
    local svc = service(clock, f)
    local tok, exp = svc:get_token()
    assert.same({ "entra-1", clock.now + 86400 }, { tok, exp })
    assert.equal("entra-1", (svc:get_token()))
    assert.equal(1, f.token_requests)
    local _, err = signalr.new { endpoint = ENDPOINT, credential = signalr.credential.access_key("k") }:get_token()
    assert.equal("invalid_argument", err.kind)
  end)
end)

describe("Entra connection strings", function()
  local function describe_cs(cs)
    local svc, err = signalr.new { connection_string = cs }
    assert(svc, err and tostring(err))
    return svc:entra_status().credential, svc
  end

  it("AuthType=azure.app with ClientSecret is a client secret credential", function()
    local d, svc = describe_cs("Endpoint=https://x.service.signalr.net;AuthType=azure.app;ClientId=c1;TenantId=t1;"
      .. "ClientSecret=cs-secret-9;Version=1.0;")
    assert.matches("^ClientSecretCredential %(tenant t1, client c1", d)
    assert.equal("entra", svc:info().auth)
    H.no_secret(d .. tostring(svc), { "cs-secret-9" })
  end)

  it("AuthType=azure.app with ClientCert is a certificate credential", function()
    local dir = H.tmpdir()
    local key = H.rsa_key(1)
    local _, pem = H.certificate(key, "cs-cert")
    local path = H.write(dir .. "/c.pem", pem .. key:toPEM("private"), "600")
    local d = describe_cs("Endpoint=https://x.service.signalr.net;AuthType=azure.app;ClientId=c1;TenantId=t1;"
      .. "ClientCert=" .. path .. ";")
    H.rmtree(dir)
    assert.matches("^ClientCertificateCredential", d)
  end)

  it("AuthType=azure.msi (ClientId = user-assigned) and aad without a secret are managed identity", function()
    assert.matches("^ManagedIdentityCredential %(.-%), client id c9",
      describe_cs("Endpoint=https://x.service.signalr.net;AuthType=azure.msi;ClientId=c9;"))
    assert.matches("^ManagedIdentityCredential %(.-%), system%-assigned",
      describe_cs("Endpoint=https://x.service.signalr.net;AuthType=aad;"))
    assert.matches("^ClientSecretCredential",
      describe_cs("Endpoint=https://x.service.signalr.net;AuthType=aad;ClientId=c1;TenantId=t1;ClientSecret=s;"))
  end)

  it("AuthType=azure is the default chain", function()
    assert.matches("^DefaultAzureCredential %[", describe_cs("Endpoint=https://x.service.signalr.net;AuthType=azure;"))
  end)

  it("fetches the key from the ServerEndpoint when there is one", function()
    local clock = H.clock()
    local svc = assert(signalr.new { clock = clock.fn, connection_string =
      "Endpoint=https://x.service.signalr.net;ServerEndpoint=https://internal.example:8443/signalr;"
      .. "AuthType=azure.app;ClientId=c1;TenantId=t1;ClientSecret=s;" })
    local urls = {}
    svc:set_driver(H.driver(clock, function(req)
      urls[#urls + 1] = req.url
      if req.url:find("oauth2", 1, true) then return H.token_response("e", 3600) end
      return H.json(200, { KeyId = "k", AccessKey = "a" })
    end, { requests = {}, sleeps = {} }))
    assert(svc:negotiate("chat"))
    assert.same({ "https://login.microsoftonline.com/t1/oauth2/v2.0/token",
      "https://internal.example:8443/signalr/api/v1/auth/accessKey" }, urls)
  end)
end)
