-- The identity side over the wire: a real signalr-emulator process, HTTPS with its CA
-- trusted (lua-http's client and curl), the plain-HTTP identity port, and Entra tokens
-- used against a SignalR resource (cross-tenant with and without provisioning, RBAC).
local cjson = require "cjson"
local jwt = require "signalr.emulator.jwt"
local directory = require "signalr.emulator.directory"
local emulator = require "spec.helpers.emulator"
local fx = require "spec.helpers.identity_fixtures"

local SCOPE = "https://signalr.azure.com/.default"
local ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

local w, emu, resource, sub, identity_header

local function form(t)
  local parts = {}
  for k, v in pairs(t) do
    parts[#parts + 1] = k .. "=" .. tostring(v):gsub("[^%w%-%._~]", function(c)
      return ("%%%02X"):format(c:byte())
    end)
  end
  return table.concat(parts, "&")
end

local function token_request(tenant, fields, headers)
  local h = { ["content-type"] = "application/x-www-form-urlencoded" }
  for k, v in pairs(headers or {}) do h[k] = v end
  local status, _, body = emu:request { method = "POST", url = emu.authority .. "/" .. tenant .. "/oauth2/v2.0/token",
    headers = h, body = type(fields) == "table" and form(fields) or fields }
  assert(status, body)
  return status, cjson.decode(body)
end

local function secret_fields(client_id, secret, extra)
  local f = { grant_type = "client_credentials", client_id = client_id, client_secret = secret, scope = SCOPE }
  for k, v in pairs(extra or {}) do f[k] = v end
  return f
end

-- Sends a token request and checks Entra's status, code and error_uri.
local function expect_aadsts(want_status, code, tenant, fields)
  local status, body = token_request(tenant, fields)
  assert.equal(want_status, status, body.error_description)
  assert.same({ code }, body.error_codes)
  assert.matches("^AADSTS" .. code .. ": ", body.error_description)
  assert.equal(emu.authority .. "/error?code=" .. code, body.error_uri)
end

local function claims_of(token) return assert(jwt.decode(token)).claims end

local function cert_assertion(opts)
  opts = opts or {}
  local now = opts.now or os.time()
  local tp = jwt.thumbprints(w.cert)
  local header = { alg = opts.alg or "RS256", typ = "JWT" }
  if header.alg == "PS256" then header["x5t#S256"] = tp["x5t#S256"] else header.x5t = tp.x5t end
  return jwt.encode(header, { aud = opts.aud or (emu.authority .. "/" .. w.tenant_a .. "/oauth2/v2.0/token"),
    iss = w.cert_app, sub = w.cert_app, jti = fx.uuid(), nbf = now, exp = now + 600 }, opts.key or w.cert_key)
end

local function access_key_call(token)
  local status, _, body = emu:request { url = resource.endpoint .. "/api/v1/auth/accessKey",
    headers = { authorization = "Bearer " .. token } }
  return status, body
end

setup(function()
  w = fx.world()
  sub = fx.uuid()
  identity_header = fx.secret()
  local cfg = w.config
  cfg.port, cfg.imds_port = 0, 0
  cfg.subscriptions = { { id = sub, tenant = w.tenant_a } }
  cfg.resources = { { name = "chat", tenant = w.tenant_a, subscription = sub, port = 0,
    access_keys = { fx.secret() .. "aaaa", fx.secret() .. "bbbb" } } }
  cfg.management_groups = { { id = "team", subscriptions = { sub } } }
  cfg.role_assignments = {
    { principal_id = w.sp_server, role = "SignalR App Server",
      scope = "/providers/Microsoft.Management/managementGroups/team" },
    { principal_id = w.vm_oid, role = "SignalR App Server", scope = "/subscriptions/" .. sub },
    { principal_id = w.sp_multi_b, role = "SignalR Service Owner", scope = "/subscriptions/" .. sub },
  }
  cfg.managed_identity = { identity_header = identity_header }
  emu = emulator.start { raw_config = cfg }
  resource = emu.resources.chat
end)

teardown(function()
  if emu then
    local log = emu:log()
    assert.is_true(emu:stop())
    -- nothing secret reaches the log
    for _, s in ipairs { w.secret, w.multi_secret, w.expired_secret, identity_header } do
      assert.is_nil(log:find(s, 1, true))
    end
    assert.is_nil(log:find("eyJ", 1, true))
  end
end)

describe("Entra over HTTPS", function()
  it("issues tokens for a client secret (body and HTTP Basic via curl)", function()
    local status, body = token_request(w.tenant_a, secret_fields(w.server, w.secret))
    assert.equal(200, status)
    local c = claims_of(body.access_token)
    assert.equal(w.tenant_a, c.tid)
    assert.equal(w.sp_server, c.oid)
    assert.equal(emu.authority .. "/" .. w.tenant_a .. "/v2.0", c.iss)
    local ok, out = fx.run(("curl -sS --cacert '%s' -u '%s:%s' --data-urlencode 'grant_type=client_credentials' "
      .. "--data-urlencode 'scope=%s' '%s/%s/oauth2/v2.0/token'"):format(emu.ca_file, w.server, w.secret, SCOPE,
      emu.authority, w.domain_a))
    assert.is_true(ok, out)
    assert.equal(w.sp_server, claims_of(cjson.decode(out).access_token).oid)
  end)

  it("publishes keys and metadata that verify its tokens", function()
    local _, body = token_request(w.tenant_a, secret_fields(w.server, w.secret))
    local status, _, text = emu:request {
      url = emu.authority .. "/" .. w.tenant_a .. "/v2.0/.well-known/openid-configuration" }
    assert.equal(200, status)
    local oidc = cjson.decode(text)
    assert.equal(emu.authority .. "/" .. w.tenant_a .. "/v2.0", oidc.issuer)
    status, _, text = emu:request { url = oidc.jwks_uri }
    assert.equal(200, status)
    local jwk = cjson.decode(text).keys[1]
    assert.truthy(jwt.verify(body.access_token, { algs = { "RS256" },
      key = assert(directory.rsa_public_key_from_jwk(jwk)) }))
    -- x5c is the signing certificate in standard base64 DER
    local pem = "-----BEGIN CERTIFICATE-----\n" .. jwk.x5c[1]:gsub(("."):rep(64), "%0\n")
      .. "\n-----END CERTIFICATE-----\n"
    assert.truthy(jwt.verify(body.access_token, { algs = { "RS256" }, key = pem }))
    assert.equal(jwk.x5t, jwt.thumbprints(pem).x5t)
  end)

  it("answers each failure with Entra's code and status", function()
    expect_aadsts(401, 7000215, w.tenant_a, secret_fields(w.server, "wrong"))
    expect_aadsts(401, 7000222, w.tenant_a, secret_fields(w.server, w.expired_secret))
    expect_aadsts(400, 700016, w.tenant_a, secret_fields(fx.uuid(), w.secret))
    expect_aadsts(400, 90002, fx.uuid(), secret_fields(w.server, w.secret))
    expect_aadsts(400, 50059, "organizations", secret_fields(w.server, w.secret))
    expect_aadsts(400, 700016, w.tenant_b, secret_fields(w.server, w.secret))
    expect_aadsts(400, 700016, w.tenant_b, secret_fields(w.lonely, w.lonely_secret))
    expect_aadsts(400, 500011, w.tenant_a,
      secret_fields(w.server, w.secret, { scope = "https://x.example/.default" }))
    expect_aadsts(400, 70011, w.tenant_a, secret_fields(w.server, w.secret, { scope = "openid" }))
  end)

  it("accepts certificate assertions once, and not after they expire", function()
    for _, alg in ipairs { "RS256", "PS256" } do
      local a = cert_assertion { alg = alg }
      local fields = { grant_type = "client_credentials", client_id = w.cert_app, scope = SCOPE,
        client_assertion_type = ASSERTION_TYPE, client_assertion = a }
      local status, body = token_request(w.tenant_a, fields)
      assert.equal(200, status, body.error_description)
      assert.equal(w.cert_app, claims_of(body.access_token).appid)
      expect_aadsts(400, 50027, w.tenant_a, fields)
    end
    local fields = { grant_type = "client_credentials", client_id = w.cert_app, scope = SCOPE,
      client_assertion_type = ASSERTION_TYPE, client_assertion = cert_assertion { key = w.other_key } }
    expect_aadsts(401, 700027, w.tenant_a, fields)
    fields.client_assertion = cert_assertion { aud = "https://login.microsoftonline.com/" .. w.tenant_a
      .. "/oauth2/v2.0/token" }
    expect_aadsts(401, 50012, w.tenant_a, fields)
    fields.client_assertion = cert_assertion()
    assert.equal(200, emu:admin("POST", "/admin/clock", { advance = 601 }))
    expect_aadsts(401, 700024, w.tenant_a, fields)
  end)

  it("exchanges a federated assertion (workload identity)", function()
    local _, clock = emu:admin("GET", "/admin/clock")
    local now = math.floor(clock.now)
    local assertion = jwt.encode({ alg = "RS256", kid = "k" }, { iss = w.issuer, sub = w.subject,
      aud = directory.TOKEN_EXCHANGE_AUDIENCE, iat = now, nbf = now, exp = now + 600 }, w.issuer_key)
    local status, body = token_request(w.tenant_a, { grant_type = "client_credentials", client_id = w.workload,
      scope = SCOPE, client_assertion_type = ASSERTION_TYPE, client_assertion = assertion })
    assert.equal(200, status, body.error_description)
    assert.equal(w.workload, claims_of(body.access_token).appid)
  end)

  it("answers garbage with Entra-shaped errors and stays healthy", function()
    local rand = require "openssl.rand"
    for i = 1, 150 do
      local b = i % 3 == 0 and rand.bytes(math.random(0, 400))
        or i % 3 == 1 and ("grant_type=client_credentials&client_assertion_type=" .. ASSERTION_TYPE
          .. "&client_assertion=" .. jwt.base64url_encode(rand.bytes(40)) .. "." .. jwt.base64url_encode(rand.bytes(9))
          .. ".x")
        or string.rep("scope=" .. SCOPE .. "&", math.random(1, 3))
      local status, body = token_request(i % 2 == 0 and w.tenant_a or "x" .. i, b)
      assert.is_true(status == 400 or status == 401, tostring(status))
      assert.is_number(body.error_codes[1])
    end
    local status, body = token_request(w.tenant_a, string.rep("a", 200 * 1024))
    assert.equal(400, status)
    assert.is_number(body.error_codes[1])
    assert.equal(200, (emu:request { url = emu.authority .. "/api/health" }))
    assert.equal(200, (token_request(w.tenant_a, secret_fields(w.server, w.secret))))
  end)
end)

describe("managed identity over plain HTTP", function()
  it("serves IMDS, including the SDKs' probe without the Metadata header", function()
    local status, _, text = emu:request { url = emu.imds .. "/metadata/identity/oauth2/token" }
    assert.equal(400, status)
    assert.equal("Required metadata header not specified", cjson.decode(text).error_description)
    status, _, text = emu:request { url = emu.imds .. "/metadata/identity/oauth2/token?api-version=2018-02-01"
      .. "&resource=https%3A%2F%2Fsignalr.azure.com&client_id=" .. w.uami_client, headers = { metadata = "true" } }
    assert.equal(200, status)
    local body = cjson.decode(text)
    assert.equal(w.uami_oid, claims_of(body.access_token).oid)
    assert.is_string(body.expires_on)
  end)

  it("serves App Service with the configured identity header", function()
    local url = emu.imds .. "/msi/token?api-version=2019-08-01&resource=https://signalr.azure.com"
    local status, _, text = emu:request { url = url, headers = { ["x-identity-header"] = identity_header } }
    assert.equal(200, status)
    assert.equal(w.vm_oid, claims_of(cjson.decode(text).access_token).oid)
    status = emu:request { url = url, headers = { ["x-identity-header"] = "nope" } }
    assert.equal(401, status)
  end)
end)

describe("Entra tokens at the SignalR resource", function()
  it("lets a principal with the role fetch a temporary key (inherited from a management group)", function()
    local _, body = token_request(w.tenant_a, secret_fields(w.server, w.secret))
    local status, text = access_key_call(body.access_token)
    assert.equal(200, status, text)
    assert.is_string(cjson.decode(text).AccessKey)
  end)

  it("lets a managed identity with the role in, by its IMDS token", function()
    local _, _, text = emu:request { url = emu.imds .. "/metadata/identity/oauth2/token?api-version=2018-02-01"
      .. "&resource=https://signalr.azure.com", headers = { metadata = "true" } }
    local status = access_key_call(cjson.decode(text).access_token)
    assert.equal(200, status)
  end)

  it("refuses a provisioned multitenant app's token from another tenant (401) whatever its roles", function()
    local status, body = token_request(w.tenant_b, secret_fields(w.multi, w.multi_secret))
    assert.equal(200, status)
    local code, text = access_key_call(body.access_token)
    assert.equal(401, code)
    assert.matches("wrong tenant", text)
  end)

  it("refuses the same app in its home tenant without a role (403), then admits it once assigned", function()
    local _, body = token_request(w.tenant_a, secret_fields(w.multi, w.multi_secret))
    local code, text = access_key_call(body.access_token)
    assert.equal(403, code)
    assert.matches("auth/accessKey/action", text)
    local home_sp = claims_of(body.access_token).oid
    local st, added = emu:admin("POST", "/admin/role-assignments", { principal_id = home_sp,
      role = "SignalR App Server", scope = resource.resource_id })
    assert.is_true(st == 200 or st == 201, cjson.encode(added))
    assert.equal(200, (access_key_call(body.access_token)))
  end)

  it("rejects tokens this emulator did not sign", function()
    local _, body = token_request(w.tenant_a, secret_fields(w.server, w.secret))
    local claims = claims_of(body.access_token)
    local forged = jwt.encode({ alg = "RS256", kid = "x" }, claims, w.other_key)
    assert.equal(401, (access_key_call(forged)))
  end)
end)
