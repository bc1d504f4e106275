-- entra.lua through its handlers, called with plain request tables (no socket): each
-- credential kind, every rejection with Entra's code and status, tokens, keys, metadata.
local cjson = require "cjson"
local jwt = require "signalr.emulator.jwt"
local directory = require "signalr.emulator.directory"
local entra = require "signalr.emulator.entra"
local fx = require "spec.helpers.identity_fixtures"

local AUTHORITY = "https://localhost:8443"
local w, dir, clock, settings, idp, routes

local function encode_form(t)
  local parts = {}
  for k, v in pairs(t) do
    parts[#parts + 1] = k .. "=" .. tostring(v):gsub("[^%w%-%._~]", function(c)
      return ("%%%02X"):format(c:byte())
    end)
  end
  return table.concat(parts, "&")
end

local function route(template)
  for _, r in ipairs(routes) do if r.template == template then return r.handler end end
  error("no route " .. template)
end

local function post_token(tenant, form, headers)
  local h = { ["content-type"] = "application/x-www-form-urlencoded" }
  for k, v in pairs(headers or {}) do h[k] = v end
  local res = route("/{tenant}/oauth2/v2.0/token") {
    method = "POST", params = { tenant = tenant }, headers = h, query = {},
    body = type(form) == "table" and encode_form(form) or form,
  }
  return res, cjson.decode(res.body)
end

local function secret_form(client_id, secret, extra)
  local f = { grant_type = "client_credentials", client_id = client_id, client_secret = secret,
    scope = entra.SCOPE }
  for k, v in pairs(extra or {}) do f[k] = v end
  return f
end

-- Asserts Entra's error shape and code; returns the decoded body.
local function expect_error(res, body, status, code, err)
  assert.equal(status, res.status)
  assert.equal(err, body.error)
  assert.same({ code }, body.error_codes)
  local desc = body.error_description
  assert.matches("^AADSTS" .. code .. ": ", desc)
  assert.matches("\r\nTrace ID: %x+%-", desc)
  assert.matches("\r\nCorrelation ID: %x+%-", desc)
  assert.matches("\r\nTimestamp: %d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%dZ$", desc)
  assert.matches("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%dZ$", body.timestamp)
  assert.is_true(directory.is_guid(body.trace_id))
  assert.is_true(directory.is_guid(body.correlation_id))
  assert.equal(AUTHORITY .. "/error?code=" .. code, body.error_uri)
  assert.equal("application/json; charset=utf-8", res.headers["content-type"])
  for _, s in ipairs { w.secret, w.expired_secret, w.multi_secret, w.lonely_secret } do
    assert.is_nil(res.body:find(s, 1, true))
  end
  return body
end

local function claims_of(token)
  local t = assert(jwt.decode(token))
  return t.claims, t.header
end

-- Checks a token against the published JWKS with a key rebuilt from n/e (an independent
-- path from the signing key object).
local function verify_with_jwks(token, tenant)
  local res = route("/{tenant}/discovery/v2.0/keys") { method = "GET", params = { tenant = tenant }, headers = {} }
  assert.equal(200, res.status)
  local jwks = cjson.decode(res.body)
  local header = select(2, claims_of(token))
  for _, jwk in ipairs(jwks.keys) do
    if jwk.kid == header.kid then
      local key = assert(directory.rsa_public_key_from_jwk(jwk))
      return jwt.verify(token, { algs = { "RS256" }, key = key })
    end
  end
  return nil, "kid not published"
end

local function cert_assertion(opts)
  opts = opts or {}
  local now = clock:now()
  local tp = jwt.thumbprints(opts.cert or w.cert)
  local header = { alg = opts.alg or "RS256", typ = "JWT" }
  if header.alg == "PS256" then header["x5t#S256"] = tp["x5t#S256"] else header.x5t = tp.x5t end
  for k, v in pairs(opts.header or {}) do header[k] = v end
  local claims = {
    aud = opts.aud or (AUTHORITY .. "/" .. w.tenant_a .. "/oauth2/v2.0/token"),
    iss = opts.iss or w.cert_app, sub = opts.sub or w.cert_app,
    jti = opts.jti or fx.uuid(), nbf = opts.nbf or now, exp = opts.exp or (now + 600),
  }
  return jwt.encode(header, claims, opts.key or w.cert_key)
end

local function assertion_form(assertion, client_id)
  return { grant_type = "client_credentials", client_id = client_id or w.cert_app, scope = entra.SCOPE,
    client_assertion_type = entra.ASSERTION_TYPE, client_assertion = assertion }
end

local function federated_assertion(opts)
  opts = opts or {}
  local now = clock:now()
  return jwt.encode({ alg = opts.alg or "RS256", kid = opts.kid }, {
    iss = opts.iss or w.issuer, sub = opts.sub or w.subject,
    aud = opts.aud or { directory.TOKEN_EXCHANGE_AUDIENCE },
    iat = now, nbf = now, exp = opts.exp or (now + 3600),
  }, opts.key or w.issuer_key)
end

local state_dir

setup(function()
  w = fx.world()
  dir = assert(directory.new(w.config))
  state_dir = fx.tmpdir()
end)

teardown(function() fx.rmtree(state_dir) end)

before_each(function()
  clock = fx.clock(os.time())
  settings = { token_lifetime = 3600 }
  idp = entra.new { directory = dir, clock = clock, settings = settings, authority = AUTHORITY,
    state_dir = state_dir }
  routes = idp:routes()
end)

describe("client secret", function()
  it("issues an RS256 token with the documented claims", function()
    local res, body = post_token(w.tenant_a, secret_form(w.server, w.secret))
    assert.equal(200, res.status)
    assert.equal("Bearer", body.token_type)
    assert.equal(3600, body.expires_in)
    assert.equal(3600, body.ext_expires_in)
    assert.is_nil(body.refresh_in)
    assert.equal("no-store, no-cache", res.headers["cache-control"])
    local c, h = claims_of(body.access_token)
    assert.equal("RS256", h.alg)
    assert.is_string(h.kid)
    assert.equal("https://signalr.azure.com", c.aud)
    assert.equal(AUTHORITY .. "/" .. w.tenant_a .. "/v2.0", c.iss)
    assert.equal(w.tenant_a, c.tid)
    assert.equal(w.sp_server, c.oid)
    assert.equal(w.sp_server, c.sub)
    assert.equal(w.server, c.appid)
    assert.equal(w.server, c.azp)
    assert.equal("app", c.idtyp)
    assert.equal("2.0", c.ver)
    assert.equal("1", c.azpacr)
    assert.equal(clock:now(), c.iat)
    assert.equal(clock:now(), c.nbf)
    assert.equal(clock:now() + 3600, c.exp)
    table.sort(c.groups)
    local want = { w.group_inner, w.group_outer }
    table.sort(want)
    assert.same(want, c.groups)
    assert.truthy(verify_with_jwks(body.access_token, w.tenant_a))
  end)

  it("accepts HTTP Basic client authentication and the tenant's domain name", function()
    local basic = jwt.base64url_encode(w.server .. ":" .. w.secret):gsub("%-", "+"):gsub("_", "/")
    basic = basic .. string.rep("=", (4 - #basic % 4) % 4)
    local res, body = post_token(w.domain_a:upper(),
      { grant_type = "client_credentials", scope = entra.SCOPE }, { authorization = "Basic " .. basic })
    assert.equal(200, res.status)
    assert.equal(w.tenant_a, claims_of(body.access_token).tid)
  end)

  it("follows settings: lifetime and refresh_in", function()
    settings.token_lifetime = 120
    settings.refresh_in = 60
    local res, body = post_token(w.tenant_a, secret_form(w.server, w.secret))
    assert.equal(200, res.status)
    assert.equal(120, body.expires_in)
    assert.equal(60, body.refresh_in)
    assert.equal(clock:now() + 120, claims_of(body.access_token).exp)
  end)

  it("rejects a wrong secret with 401 AADSTS7000215 and echoes the correlation id", function()
    local cid = fx.uuid()
    local res, body = post_token(w.tenant_a, secret_form(w.server, w.secret .. "x"), { ["client-request-id"] = cid })
    expect_error(res, body, 401, 7000215, "invalid_client")
    assert.equal(cid, body.correlation_id)
    assert.matches("Correlation ID: " .. cid:gsub("%-", "%%-"), body.error_description)
    assert.matches(w.server, body.error_description, 1, true)
  end)

  it("rejects an expired secret with AADSTS7000222", function()
    local res, body = post_token(w.tenant_a, secret_form(w.server, w.expired_secret))
    expect_error(res, body, 401, 7000222, "invalid_client")
  end)

  it("rejects an unknown app with 400 AADSTS700016", function()
    local res, body = post_token(w.tenant_a, secret_form(fx.uuid(), w.secret))
    expect_error(res, body, 400, 700016, "unauthorized_client")
    res, body = post_token(w.tenant_a, secret_form("Enter_the_Application_Id_here", w.secret))
    expect_error(res, body, 400, 700016, "unauthorized_client")
  end)

  it("rejects tenants Entra would not serve", function()
    local res, body = post_token(fx.uuid(), secret_form(w.server, w.secret))
    expect_error(res, body, 400, 90002, "invalid_request")
    res, body = post_token("nowhere.example.test", secret_form(w.server, w.secret))
    expect_error(res, body, 400, 90002, "invalid_request")
    res, body = post_token("not a tenant!", secret_form(w.server, w.secret))
    expect_error(res, body, 400, 900023, "invalid_request")
    for _, alias in ipairs { "common", "consumers", "Common" } do
      res, body = post_token(alias, secret_form(w.server, w.secret))
      expect_error(res, body, 400, 9001023, "invalid_request")
    end
    res, body = post_token("organizations", secret_form(w.server, w.secret))
    expect_error(res, body, 400, 50059, "invalid_request")
  end)
end)

describe("tenants and provisioning", function()
  it("refuses a single-tenant app in another tenant", function()
    local res, body = post_token(w.tenant_b, secret_form(w.server, w.secret))
    expect_error(res, body, 400, 700016, "unauthorized_client")
  end)

  it("serves a multitenant app in a tenant where it is provisioned, as that tenant's principal", function()
    local res_a, body_a = post_token(w.tenant_a, secret_form(w.multi, w.multi_secret))
    local res_b, body_b = post_token(w.tenant_b, secret_form(w.multi, w.multi_secret))
    assert.equal(200, res_a.status)
    assert.equal(200, res_b.status)
    local a, b = claims_of(body_a.access_token), claims_of(body_b.access_token)
    assert.equal(w.tenant_a, a.tid)
    assert.equal(w.tenant_b, b.tid)
    assert.equal(w.multi, a.appid)
    assert.equal(w.multi, b.appid)
    assert.equal(w.sp_multi_b, b.oid)
    assert.are_not.equal(a.oid, b.oid)
    assert.equal(AUTHORITY .. "/" .. w.tenant_b .. "/v2.0", b.iss)
    assert.truthy(verify_with_jwks(body_b.access_token, w.tenant_b))
    assert.is_nil(verify_with_jwks(body_b.access_token, w.tenant_a))
  end)

  it("refuses a multitenant app not provisioned in the tenant", function()
    assert.equal(200, post_token(w.tenant_a, secret_form(w.lonely, w.lonely_secret)).status)
    local res, body = post_token(w.tenant_b, secret_form(w.lonely, w.lonely_secret))
    expect_error(res, body, 400, 700016, "unauthorized_client")
    assert.matches("Fabrikam", body.error_description, 1, true)
  end)
end)

describe("scope", function()
  local function with_scope(scope)
    return post_token(w.tenant_a, secret_form(w.server, w.secret, { scope = scope }))
  end

  it("accepts the SignalR resource's .default scope (also with the double slash)", function()
    assert.equal(200, with_scope("https://signalr.azure.com/.default").status)
    local res, body = with_scope("https://signalr.azure.com//.default")
    assert.equal(200, res.status)
    assert.equal("https://signalr.azure.com/", claims_of(body.access_token).aud)
    assert.truthy(idp:validate(body.access_token, w.tenant_a))
  end)

  it("rejects other scopes with Entra's codes", function()
    local res, body = with_scope("https://signalr.azure.com/user_impersonation")
    expect_error(res, body, 400, 1002012, "invalid_scope")
    res, body = with_scope("openid")
    expect_error(res, body, 400, 70011, "invalid_scope")
    res, body = with_scope(entra.SCOPE .. " https://graph.microsoft.com/.default")
    expect_error(res, body, 400, 70011, "invalid_scope")
    res, body = with_scope("https://graph.microsoft.com/.default")
    expect_error(res, body, 400, 500011, "invalid_resource")
    res, body = with_scope("   ")
    expect_error(res, body, 400, 900144, "invalid_request")
    res, body = post_token(w.tenant_a, { grant_type = "client_credentials", client_id = w.server,
      client_secret = w.secret })
    expect_error(res, body, 400, 900144, "invalid_request")
  end)
end)

describe("malformed requests", function()
  it("names the missing or wrong parameter", function()
    local res, body = post_token(w.tenant_a, { client_id = w.server, client_secret = w.secret, scope = entra.SCOPE })
    expect_error(res, body, 400, 900144, "invalid_request")
    assert.matches("'grant_type'", body.error_description, 1, true)
    res, body = post_token(w.tenant_a, secret_form(w.server, w.secret, { grant_type = "password" }))
    expect_error(res, body, 400, 70003, "unsupported_grant_type")
    res, body = post_token(w.tenant_a, { grant_type = "client_credentials", client_secret = w.secret,
      scope = entra.SCOPE })
    expect_error(res, body, 400, 900144, "invalid_request")
    assert.matches("'client_id'", body.error_description, 1, true)
    res, body = post_token(w.tenant_a, { grant_type = "client_credentials", client_id = w.server, scope = entra.SCOPE })
    expect_error(res, body, 401, 7000218, "invalid_client")
    res, body = post_token(w.tenant_a, encode_form(secret_form(w.server, w.secret)) .. "&scope=x")
    expect_error(res, body, 400, 90023, "invalid_request")
    res, body = post_token(w.tenant_a, secret_form(w.server, w.secret,
      { client_assertion = cert_assertion(), client_assertion_type = entra.ASSERTION_TYPE }))
    expect_error(res, body, 400, 90023, "invalid_request")
  end)

  it("answers other methods with AADSTS900561", function()
    local res = route("/{tenant}/oauth2/v2.0/token") { method = "GET", params = { tenant = w.tenant_a },
      headers = {}, query = {} }
    expect_error(res, cjson.decode(res.body), 400, 900561, "invalid_request")
  end)

  it("answers garbage with Entra-shaped errors, never a crash", function()
    local rand = require "openssl.rand"
    local bodies = { "", "=", "&&&", "%zz", "grant_type=%", string.rep("a=b&", 20000),
      "grant_type=client_credentials&client_id=" .. string.rep("x", 5000) }
    for _ = 1, 200 do bodies[#bodies + 1] = rand.bytes(math.random(0, 300)) end
    for _, b in ipairs(bodies) do
      for _, ctype in ipairs { "application/x-www-form-urlencoded", "application/json", nil } do
        local ok, res = pcall(route("/{tenant}/oauth2/v2.0/token"), { method = "POST",
          params = { tenant = w.tenant_a }, headers = { ["content-type"] = ctype }, query = {}, body = b })
        assert.is_true(ok, res)
        assert.is_true(res.status == 400 or res.status == 401)
        local decoded = cjson.decode(res.body)
        assert.is_number(decoded.error_codes[1])
      end
    end
  end)
end)

describe("certificate assertion", function()
  it("accepts RS256 with x5t and PS256 with x5t#S256", function()
    for _, alg in ipairs { "RS256", "PS256" } do
      local res, body = post_token(w.tenant_a, assertion_form(cert_assertion { alg = alg }))
      assert.equal(200, res.status, body.error_description)
      local c = claims_of(body.access_token)
      assert.equal(w.cert_app, c.appid)
      assert.equal("2", c.azpacr)
      assert.equal(w.tenant_a, c.tid)
    end
  end)

  it("accepts the audience forms Entra accepts", function()
    for _, aud in ipairs {
      AUTHORITY .. "/" .. w.domain_a .. "/oauth2/v2.0/token",
      AUTHORITY .. "/" .. w.tenant_a .. "/oauth2/token",
      AUTHORITY .. "/" .. w.tenant_a .. "/v2.0",
      { AUTHORITY .. "/" .. w.tenant_a .. "/oauth2/v2.0/token" },
    } do
      local res, body = post_token(w.tenant_a, assertion_form(cert_assertion { aud = aud }))
      assert.equal(200, res.status, body.error_description)
    end
  end)

  it("rejects a replayed assertion", function()
    local a = cert_assertion()
    assert.equal(200, post_token(w.tenant_a, assertion_form(a)).status)
    local res, body = post_token(w.tenant_a, assertion_form(a))
    expect_error(res, body, 400, 50027, "invalid_request")
    assert.matches("replayed", body.error_description, 1, true)
  end)

  it("rejects expired and not-yet-valid assertions with AADSTS700024", function()
    local now = clock:now()
    local res, body = post_token(w.tenant_a, assertion_form(cert_assertion { nbf = now - 700, exp = now - 100 }))
    expect_error(res, body, 401, 700024, "invalid_client")
    res, body = post_token(w.tenant_a, assertion_form(cert_assertion { nbf = now + 900, exp = now + 1500 }))
    expect_error(res, body, 401, 700024, "invalid_client")
    local a = cert_assertion()
    clock:advance(601)
    res, body = post_token(w.tenant_a, assertion_form(a))
    expect_error(res, body, 401, 700024, "invalid_client")
  end)

  it("rejects mis-signed and unregistered-certificate assertions with AADSTS700027", function()
    -- signed by another key but naming the registered certificate
    local forged = cert_assertion { key = w.other_key }
    local res, body = post_token(w.tenant_a, assertion_form(forged))
    expect_error(res, body, 401, 700027, "invalid_client")
    assert.matches("invalid signature", body.error_description, 1, true)
    res, body = post_token(w.tenant_a, assertion_form(cert_assertion { key = w.other_key, cert = w.other_cert }))
    expect_error(res, body, 401, 700027, "invalid_client")
    assert.matches("not registered", body.error_description, 1, true)
    assert.matches(jwt.thumbprints(w.other_cert).x5t, body.error_description, 1, true)
  end)

  it("rejects a wrong audience", function()
    for _, aud in ipairs {
      "https://login.microsoftonline.com/" .. w.tenant_a .. "/oauth2/v2.0/token",
      AUTHORITY .. "/" .. w.tenant_b .. "/oauth2/v2.0/token",
      AUTHORITY .. "/common/oauth2/v2.0/token",
    } do
      local res, body = post_token(w.tenant_a, assertion_form(cert_assertion { aud = aud }))
      expect_error(res, body, 401, 50012, "invalid_client")
    end
    local res, body = post_token(w.tenant_a, assertion_form(cert_assertion {
      aud = { AUTHORITY .. "/" .. w.tenant_a .. "/oauth2/v2.0/token", AUTHORITY .. "/" .. w.tenant_a .. "/v2.0" } }))
    expect_error(res, body, 401, 5002741, "invalid_client")
  end)

  it("rejects identity mismatches", function()
    local res, body = post_token(w.tenant_a, assertion_form(cert_assertion(), w.server))
    expect_error(res, body, 401, 700021, "invalid_client")
    res, body = post_token(w.tenant_a, assertion_form(cert_assertion { sub = w.server }))
    expect_error(res, body, 401, 50048, "invalid_client")
    res, body = post_token(w.tenant_b, assertion_form(cert_assertion {
      aud = AUTHORITY .. "/" .. w.tenant_b .. "/oauth2/v2.0/token" }))
    expect_error(res, body, 400, 700016, "unauthorized_client")
  end)

  it("rejects garbage assertions with AADSTS50027", function()
    for _, a in ipairs { "garbage", "a.b.c", cert_assertion():gsub("%.[^.]*$", ""),
      jwt.encode({ alg = "HS256" }, { iss = w.cert_app, sub = w.cert_app, aud = "x", exp = 1 }, "k") } do
      local res, body = post_token(w.tenant_a, assertion_form(a))
      expect_error(res, body, 400, 50027, "invalid_request")
    end
    local res, body = post_token(w.tenant_a, assertion_form(cert_assertion(), nil) and
      { grant_type = "client_credentials", client_id = w.cert_app, scope = entra.SCOPE,
        client_assertion_type = "urn:other", client_assertion = cert_assertion() })
    expect_error(res, body, 400, 90023, "invalid_request")
  end)
end)

describe("hostile assertion claims", function()
  it("never crash the handler, whatever the claim types", function()
    local values = { {}, { 1, 2 }, { {} }, "text", 1e300, -1e300, true, -5, 0, 2 ^ 53, "\255\0\n" }
    local tp = jwt.thumbprints(w.cert)
    local token = route("/{tenant}/oauth2/v2.0/token")
    for _, claim in ipairs { "aud", "exp", "nbf", "jti", "iss", "sub" } do
      for _, v in ipairs(values) do
        for _, who in ipairs { "cert", "federated" } do
          local now = clock:now()
          local claims = who == "cert" and { aud = AUTHORITY .. "/" .. w.tenant_a .. "/oauth2/v2.0/token",
            iss = w.cert_app, sub = w.cert_app, jti = fx.uuid(), nbf = now, exp = now + 600 }
            or { iss = w.issuer, sub = w.subject, aud = directory.TOKEN_EXCHANGE_AUDIENCE, nbf = now, exp = now + 600 }
          claims[claim] = v
          local a = jwt.encode({ alg = "RS256", x5t = tp.x5t }, claims, who == "cert" and w.cert_key or w.issuer_key)
          local ok, res = pcall(token, { method = "POST", params = { tenant = w.tenant_a }, query = {},
            headers = { ["content-type"] = "application/x-www-form-urlencoded" },
            body = encode_form(assertion_form(a, who == "cert" and w.cert_app or w.workload)) })
          assert.is_true(ok, res)
          assert.is_truthy(cjson.decode(res.body))
        end
      end
    end
  end)
end)

describe("federated assertion (workload identity)", function()
  local function form(assertion)
    return assertion_form(assertion, w.workload)
  end

  it("exchanges a trusted issuer's token for an Entra token", function()
    local res, body = post_token(w.tenant_a, form(federated_assertion()))
    assert.equal(200, res.status, body.error_description)
    local c = claims_of(body.access_token)
    assert.equal(w.workload, c.appid)
    assert.equal(w.tenant_a, c.tid)
    res = post_token(w.tenant_a, form(federated_assertion { aud = directory.TOKEN_EXCHANGE_AUDIENCE, alg = "PS256" }))
    assert.equal(200, res.status)
  end)

  it("rejects assertions that match no federated credential with AADSTS70021", function()
    for _, opts in ipairs {
      { sub = "system:serviceaccount:default:other" },
      { aud = { "api://other" } },
      { iss = "https://issuer.elsewhere.example.test" },
    } do
      local res, body = post_token(w.tenant_a, form(federated_assertion(opts)))
      expect_error(res, body, 400, 70021, "invalid_request")
      assert.matches("Assertion Subject", body.error_description, 1, true)
    end
  end)

  it("rejects a bad signature, an expired assertion and an issuer without keys", function()
    local res, body = post_token(w.tenant_a, form(federated_assertion { key = w.other_key }))
    expect_error(res, body, 401, 700027, "invalid_client")
    res, body = post_token(w.tenant_a, form(federated_assertion { exp = clock:now() - 1 }))
    expect_error(res, body, 401, 700024, "invalid_client")
    local w2 = fx.world()
    w2.config.federated_issuers = nil
    local idp2 = entra.new { directory = assert(directory.new(w2.config)), clock = clock, authority = AUTHORITY }
    local r = idp2:token { method = "POST", params = { tenant = w2.tenant_a }, query = {},
      headers = { ["content-type"] = "application/x-www-form-urlencoded" },
      body = encode_form(assertion_form(federated_assertion(), w2.workload)) }
    assert.equal(400, r.status)
    assert.same({ 50166 }, cjson.decode(r.body).error_codes)
  end)
end)

describe("issue_token and validate", function()
  it("round-trips a token to the principal table", function()
    local _, body = post_token(w.tenant_a, secret_form(w.server, w.secret))
    local p = assert(idp:validate(body.access_token, w.tenant_a))
    assert.equal(w.tenant_a, p.tenant_id)
    assert.equal(w.sp_server, p.object_id)
    assert.equal("service_principal", p.kind)
    assert.equal(w.server, p.app_id)
    assert.equal(2, #p.group_ids)
    assert.truthy(idp:validate(body.access_token, w.domain_a))
  end)

  it("issues tokens for users and managed identities", function()
    local token = assert(idp:issue_token(w.tenant_a, w.user))
    local c = claims_of(token)
    assert.equal("user", c.idtyp)
    assert.equal(w.user, c.oid)
    assert.same({ w.group_outer }, c.groups)
    local p = assert(idp:validate(token, w.tenant_a))
    assert.equal("user", p.kind)
    token = assert(idp:issue_token(w.tenant_a, { object_id = w.uami_oid }))
    c = claims_of(token)
    assert.equal(w.uami_rid, c.xms_mirid)
    assert.equal(w.uami_client, c.appid)
    assert.equal("managed_identity", idp:validate(token, w.tenant_a).kind)
    assert.is_nil(idp:issue_token(w.tenant_a, w.group_outer))
    assert.is_nil(idp:issue_token(w.tenant_b, w.user))
    assert.is_nil(idp:issue_token(fx.uuid(), w.user))
  end)

  it("gives a precise reason for every invalid token", function()
    local token = assert(idp:issue_token(w.tenant_a, w.sp_server))
    local function reason_of(tok, tenant)
      local p, reason, kind = idp:validate(tok, tenant or w.tenant_a)
      assert.is_nil(p)
      assert.is_nil(reason:find(tok:sub(1, 20), 1, true))
      return kind, reason
    end
    assert.equal("malformed", reason_of("not-a-token"))
    local h, _, s = token:match("^([^.]+)%.([^.]+)%.([^.]+)$")
    local claims = claims_of(token)
    claims.oid = w.user
    assert.equal("signature", reason_of(h .. "." .. jwt.base64url_encode(cjson.encode(claims)) .. "." .. s))
    local kind, reason = reason_of(token, w.tenant_b)
    assert.equal("tenant", kind)
    assert.matches("wrong tenant", reason)
    local sk = idp:signing_key(dir:tenant(w.tenant_a))
    local function signed(mod)
      local cl = claims_of(token)
      for k, v in pairs(mod) do cl[k] = v end
      return jwt.encode({ alg = "RS256", kid = sk.kid }, cl, sk.key)
    end
    assert.equal("audience", reason_of(signed { aud = "https://management.azure.com" }))
    assert.equal("issuer", reason_of(signed { iss = "https://login.microsoftonline.com/" .. w.tenant_a .. "/v2.0" }))
    assert.equal("principal", reason_of(signed { oid = fx.uuid() }))
    assert.equal("principal", reason_of(signed { oid = w.group_outer }))
    assert.equal("tenant", reason_of(signed { tid = fx.uuid() }))
    assert.equal("signature", reason_of(jwt.encode({ alg = "RS256", kid = "other" }, claims_of(token), sk.key)))
    assert.equal("signature", reason_of(jwt.encode({ alg = "RS256", kid = sk.kid }, claims_of(token), w.other_key)))
    assert.equal("not_yet_valid", reason_of(signed { nbf = clock:now() + 60 }))
    assert.equal("malformed", reason_of(signed { exp = cjson.null }))
    clock:advance(3600)
    assert.equal("expired", reason_of(token))
  end)

  it("keeps a principal to the tenant that issued its token", function()
    local _, body = post_token(w.tenant_b, secret_form(w.multi, w.multi_secret))
    local p = assert(idp:validate(body.access_token, w.tenant_b))
    assert.equal(w.sp_multi_b, p.object_id)
    local kind = select(3, idp:validate(body.access_token, w.tenant_a))
    assert.equal("tenant", kind)
  end)
end)

describe("keys and metadata", function()
  it("publishes JWKS and OpenID configuration per tenant", function()
    local res = route("/{tenant}/discovery/v2.0/keys") { method = "GET", params = { tenant = w.domain_b },
      headers = {} }
    local jwks = cjson.decode(res.body)
    assert.equal(1, #jwks.keys)
    local k = jwks.keys[1]
    assert.equal("RSA", k.kty)
    assert.equal("sig", k.use)
    assert.equal(k.kid, k.x5t)
    assert.equal(256, #jwt.base64url_decode(k.n))
    assert.equal(AUTHORITY .. "/" .. w.tenant_b .. "/v2.0", k.issuer)
    local a = cjson.decode(route("/{tenant}/discovery/v2.0/keys") { method = "GET",
      params = { tenant = w.tenant_a }, headers = {} }.body)
    assert.are_not.equal(k.kid, a.keys[1].kid)
    res = route("/{tenant}/v2.0/.well-known/openid-configuration") { method = "GET",
      params = { tenant = w.tenant_a }, headers = {} }
    local oidc = cjson.decode(res.body)
    assert.equal(AUTHORITY .. "/" .. w.tenant_a .. "/oauth2/v2.0/token", oidc.token_endpoint)
    assert.equal(AUTHORITY .. "/" .. w.tenant_a .. "/v2.0", oidc.issuer)
    assert.equal(AUTHORITY .. "/" .. w.tenant_a .. "/discovery/v2.0/keys", oidc.jwks_uri)
    assert.is_string(oidc.authorization_endpoint)
    res = route("/{tenant}/v2.0/.well-known/openid-configuration") { method = "GET",
      params = { tenant = "organizations" }, headers = {} }
    assert.equal(AUTHORITY .. "/{tenantid}/v2.0", cjson.decode(res.body).issuer)
    res = route("/{tenant}/discovery/v2.0/keys") { method = "GET", params = { tenant = fx.uuid() }, headers = {} }
    expect_error(res, cjson.decode(res.body), 400, 90002, "invalid_request")
  end)

  it("keeps signing keys in the state directory across restarts, private", function()
    local kid = idp:signing_key(dir:tenant(w.tenant_a)).kid
    local again = entra.new { directory = dir, clock = clock, authority = AUTHORITY, state_dir = state_dir }
    assert.equal(kid, again:signing_key(dir:tenant(w.tenant_a)).kid)
    local token = again:issue_token(w.tenant_a, w.sp_server)
    assert.truthy(idp:validate(token, w.tenant_a))
    local ok, out = fx.run(("stat -c %%a '%s/entra/%s.key.pem'"):format(state_dir, w.tenant_a))
    assert.is_true(ok)
    assert.equal("600", out:match("%d+"))
  end)

  it("answers instance discovery for its own host", function()
    local res = route("/{tenant}/discovery/instance") { method = "GET", params = { tenant = "common" },
      headers = {},
      query = { authorization_endpoint = { AUTHORITY .. "/" .. w.tenant_a .. "/oauth2/v2.0/authorize" } } }
    local body = cjson.decode(res.body)
    assert.equal(AUTHORITY .. "/" .. w.tenant_a .. "/v2.0/.well-known/openid-configuration",
      body.tenant_discovery_endpoint)
    assert.same({ "localhost:8443" }, body.metadata[1].aliases)
  end)
end)
