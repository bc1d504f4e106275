-- directory.lua: the config's tenants and federated_issuers sections, validated with an
-- error that names the field, and the lookups the identity parts rely on.
local directory = require "signalr.emulator.directory"
local jwt = require "signalr.emulator.jwt"
local fx = require "spec.helpers.identity_fixtures"

local w

local function broken(mutate, pattern)
  local world = fx.world()
  mutate(world.config, world)
  local dir, err = directory.new(world.config)
  assert.is_nil(dir)
  assert.is_string(err)
  assert.matches(pattern, err)
  for _, s in ipairs { world.secret, world.expired_secret, world.multi_secret } do
    assert.is_nil(err:find(s, 1, true))
  end
  return err
end

setup(function() w = fx.world() end)

describe("directory lookups", function()
  local dir
  before_each(function() dir = assert(directory.new(w.config)) end)

  it("finds tenants by id or domain, any case", function()
    assert.equal(w.tenant_a, dir:tenant(w.tenant_a:upper()).id)
    assert.equal(w.tenant_b, dir:tenant(w.domain_b:upper()).id)
    assert.is_nil(dir:tenant(fx.uuid()))
    assert.is_nil(dir:tenant(nil))
  end)

  it("gives each app its home service principal and multitenant apps theirs where provisioned", function()
    local a, b = dir:tenant(w.tenant_a), dir:tenant(w.tenant_b)
    assert.equal(w.sp_server, dir:service_principal(a, w.server).object_id)
    assert.is_nil(dir:service_principal(b, w.server))
    local home, guest = dir:service_principal(a, w.multi), dir:service_principal(b, w.multi)
    assert.equal(w.sp_multi_b, guest.object_id)
    assert.are_not.equal(home.object_id, guest.object_id)
    assert.equal(w.multi, guest.app_id)
    assert.is_nil(dir:service_principal(b, w.lonely))
    -- object ids left out of the config are stable across restarts
    assert.equal(home.object_id, dir:service_principal(assert(directory.new(w.config)):tenant(w.tenant_a), w.multi)
      .object_id)
  end)

  it("resolves group membership transitively", function()
    local sp = dir:object(w.tenant_a, w.sp_server)
    local got = dir:principal(sp).group_ids
    local want = { w.group_inner, w.group_outer }
    table.sort(want)
    assert.same(want, got)
    assert.same({ w.group_outer }, dir:principal(dir:object(w.tenant_a, w.user)).group_ids)
    assert.same({}, dir:principal(dir:object(w.tenant_a, w.vm_oid)).group_ids)
  end)

  it("survives group cycles", function()
    local world = fx.world()
    local g = world.config.tenants[1].groups
    g[2].members = { world.sp_server, world.group_outer }
    local dir2 = assert(directory.new(world.config))
    assert.equal(2, #dir2:principal(dir2:object(world.tenant_a, world.sp_server)).group_ids)
    assert.equal(2, #dir2:principal(dir2:object(world.tenant_a, world.group_outer)).group_ids)
  end)

  it("selects managed identities", function()
    assert.equal(w.vm_oid, dir:managed_identity().object_id)
    assert.equal(w.uami_oid, dir:managed_identity { client_id = w.uami_client:upper() }.object_id)
    assert.equal(w.uami_oid, dir:managed_identity { object_id = w.uami_oid }.object_id)
    assert.equal(w.uami_oid, dir:managed_identity { resource_id = w.uami_rid:lower() }.object_id)
    assert.is_nil(dir:managed_identity { client_id = w.server })
    assert.is_nil(dir:managed_identity { object_id = w.user })
    assert.is_nil(dir:managed_identity { resource_id = "/subscriptions/x" })
  end)

  it("checks secrets by digest, with expiry", function()
    local app = dir:application(w.server)
    assert.equal("valid", dir:check_secret(app, w.secret, os.time()))
    assert.equal("expired", dir:check_secret(app, w.expired_secret, os.time()))
    assert.equal("valid", dir:check_secret(app, w.expired_secret, directory.parse_time("2019-12-31T23:59:59Z")))
    assert.equal("invalid", dir:check_secret(app, w.secret:sub(2), os.time()))
    assert.equal("invalid", dir:check_secret(app, nil, os.time()))
    for _, s in ipairs(app.secrets) do assert.is_nil(s.value) end
  end)

  it("matches registered certificates by x5t or x5t#S256", function()
    local app = dir:application(w.cert_app)
    local tp = jwt.thumbprints(w.cert)
    assert.truthy(dir:certificate(app, { x5t = tp.x5t }))
    assert.truthy(dir:certificate(app, { ["x5t#S256"] = tp["x5t#S256"] }))
    assert.is_nil(dir:certificate(app, { x5t = jwt.thumbprints(w.other_cert).x5t }))
    assert.is_nil(dir:certificate(app, {}))
  end)

  it("parses times without the local time zone", function()
    assert.equal(0, directory.parse_time("1970-01-01T00:00:00Z"))
    assert.equal(1577836800, directory.parse_time("2020-01-01T00:00:00Z"))
    assert.equal(1577836800, directory.parse_time("2020-01-01"))
    assert.equal(951782400, directory.parse_time("2000-02-29T00:00:00.123Z"))
    assert.equal(42, directory.parse_time(42))
  end)

  it("round-trips RSA keys through JWK", function()
    local jwk = directory.jwk_from_rsa_key(w.issuer_key, "k1")
    local key = assert(directory.rsa_public_key_from_jwk(jwk))
    assert.equal(w.issuer_key:toPEM("public"), key:toPEM("public"))
    assert.is_nil(directory.rsa_public_key_from_jwk { kty = "EC" })
    assert.is_nil(directory.rsa_public_key_from_jwk { kty = "RSA", n = "!!", e = "AQAB" })
  end)

  it("loads federated issuer keys from PEM, JWKS and files", function()
    local tmp = fx.tmpdir()
    local jwks = { keys = { directory.jwk_from_rsa_key(w.issuer_key, "kid-1") } }
    fx.write(tmp .. "/jwks.json", require("cjson").encode(jwks))
    fx.write(tmp .. "/pub.pem", w.issuer_key:toPEM("public"))
    local dir2 = assert(directory.new { base_dir = tmp, federated_issuers = {
      { issuer = "https://a.example.test", jwks_file = "jwks.json" },
      { issuer = "https://b.example.test", public_key_file = tmp .. "/pub.pem" },
      { issuer = "https://c.example.test", jwks = jwks },
    } })
    assert.equal("kid-1", dir2:federated_issuer("https://a.example.test").keys[1].kid)
    assert.truthy(dir2:federated_issuer("https://b.example.test"))
    assert.truthy(dir2:federated_issuer("https://c.example.test"))
    assert.is_nil(dir2:federated_issuer("https://d.example.test"))
    fx.rmtree(tmp)
  end)
end)

describe("config validation", function()
  it("accepts an empty config", function()
    assert.truthy(directory.new {})
    assert.truthy(directory.new(nil))
  end)

  it("names the field of every mistake", function()
    broken(function(c) c.tenants[1].id = nil end, "^tenants%[1%]%.id: is required")
    broken(function(c) c.tenants[1].id = "contoso" end, "^tenants%[1%]%.id: must be a GUID")
    broken(function(c) c.tenants[2].id = c.tenants[1].id end, "^tenants%[2%]%.id: duplicates tenants%[1%]")
    broken(function(c) c.tenants[2].domain = c.tenants[1].domain end, "already the domain of tenants%[1%]")
    broken(function(c) c.tenants[1].domain = "not a domain" end, "^tenants%[1%]%.domain: is not a domain name")
    broken(function(c) c.tenants = { x = 1 } end, "^config%.tenants: must be a list")
    broken(function(c) c.tenants[1].apps[1].client_id = nil end, "^tenants%[1%]%.apps%[1%]%.client_id: is required")
    broken(function(c) c.tenants[1].apps[2].client_id = c.tenants[1].apps[1].client_id end,
      "apps%[2%]%.client_id: duplicates the client id of tenants%[1%]%.apps%[1%]")
    broken(function(c) c.tenants[1].apps[1].sign_in_audience = "everyone" end, "sign_in_audience: must be")
    broken(function(c) c.tenants[1].apps[1].secrets = { "" } end, "apps%[1%]%.secrets%[1%]: needs a non%-empty")
    broken(function(c) c.tenants[1].apps[1].secrets[2].expires = "next year" end, "secrets%[2%]%.expires")
    broken(function(c) c.tenants[1].apps[4].certificates = { "-----BEGIN CERTIFICATE-----\nxx" } end,
      "apps%[4%]%.certificates%[1%]: is not a PEM certificate")
    broken(function(c) c.tenants[1].apps[4].certificates = { "/nonexistent/cert.pem" } end, "cannot read file")
    broken(function(c) c.tenants[1].apps[5].federated_credentials[1].subject = nil end,
      "federated_credentials%[1%]%.subject: is required")
    broken(function(c, x) c.tenants[2].service_principals = { { app_id = x.server } } end,
      "is single%-tenant %(AzureADMyOrg%)")
    broken(function(c) c.tenants[2].service_principals = { { app_id = "11111111-2222-3333-4444-555555555555" } } end,
      "no app registration has client id")
    broken(function(c, x) c.tenants[2].service_principals[2] = { app_id = x.multi } end,
      "already has a service principal")
    broken(function(c, x) c.tenants[1].users[1].object_id = x.sp_server end, "duplicates the object id of")
    broken(function(c) c.tenants[1].groups[1].members = { "alice" } end, "members%[1%]: must be the object id")
    broken(function(c, x) c.tenants[1].groups[1].members = { x.sp_multi_b } end, "no object .* in tenant")
    broken(function(c) c.tenants[1].managed_identities[1].type = "both" end, "type: must be system_assigned")
    broken(function(c) c.tenants[1].managed_identities[2].resource_id = "uami" end, "must be an Azure resource id")
    broken(function(c, x) c.tenants[1].managed_identities[2].client_id = x.server end,
      "duplicates the client id of")
    broken(function(c) c.federated_issuers[1].public_key = "junk" end, "federated_issuers%[1%]%.public_key")
    broken(function(c) c.federated_issuers[1].public_key = nil end, "needs public_key, public_key_file, jwks")
    broken(function(c) c.federated_issuers[2] = c.federated_issuers[1] end, "duplicates another issuer")
    assert.is_nil(directory.validate { tenants = { 5 } })
    assert.is_true(directory.validate(w.config))
  end)
end)
