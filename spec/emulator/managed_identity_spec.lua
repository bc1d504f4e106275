-- managed_identity.lua through its handlers: IMDS, App Service 2019-08-01, MSI_ENDPOINT
-- (Cloud Shell, App Service 2017) and Azure Arc, each form's success and error shapes.
local cjson = require "cjson"
local jwt = require "signalr.emulator.jwt"
local directory = require "signalr.emulator.directory"
local entra = require "signalr.emulator.entra"
local managed_identity = require "signalr.emulator.managed_identity"
local fx = require "spec.helpers.identity_fixtures"

local w, dir, clock, idp, mi, state_dir, handlers

local function call(path, opts)
  opts = opts or {}
  local query = {}
  for k, v in pairs(opts.query or {}) do query[k] = { v } end
  local res = handlers[path] { method = opts.method or "GET", query = query, headers = opts.headers or {},
    body = opts.body, params = {} }
  return res, cjson.decode(res.body)
end

local function imds(query, headers)
  return call(managed_identity.IMDS_PATH, { query = query, headers = headers or { metadata = "true" } })
end

local function base_query(extra)
  local q = { ["api-version"] = "2018-02-01", resource = entra.RESOURCE }
  for k, v in pairs(extra or {}) do q[k] = v end
  return q
end

local function claims_of(token)
  return assert(jwt.decode(token)).claims
end

setup(function()
  w = fx.world()
  dir = assert(directory.new(w.config))
  state_dir = fx.tmpdir()
end)

teardown(function() fx.rmtree(state_dir) end)

before_each(function()
  clock = fx.clock(os.time())
  idp = entra.new { directory = dir, clock = clock, settings = { token_lifetime = 3600 },
    authority = "https://localhost:8443", state_dir = state_dir }
  mi = managed_identity.new { directory = dir, idp = idp, clock = clock, state_dir = state_dir,
    config = { identity_header = "header-value-for-tests" } }
  handlers = {}
  for _, r in ipairs(mi:routes()) do handlers[r.template] = r.handler end
end)

describe("IMDS", function()
  it("issues the system-assigned identity's token by default, fields as strings", function()
    local res, body = imds(base_query())
    assert.equal(200, res.status)
    assert.equal("Bearer", body.token_type)
    assert.equal(entra.RESOURCE, body.resource)
    assert.equal("3600", body.expires_in)
    assert.equal(tostring(clock:now() + 3600), body.expires_on)
    assert.equal(tostring(clock:now()), body.not_before)
    local c = claims_of(body.access_token)
    assert.equal(w.vm_oid, c.oid)
    assert.equal(w.tenant_a, c.tid)
    assert.equal("app", c.idtyp)
    assert.equal(c.appid, body.client_id)
    assert.matches("^/subscriptions/.*/virtualMachines/vm1$", c.xms_mirid)
    local p = assert(idp:validate(body.access_token, w.tenant_a))
    assert.equal("managed_identity", p.kind)
  end)

  it("selects a user-assigned identity by client_id, object_id or msi_res_id", function()
    for _, sel in ipairs { { client_id = w.uami_client }, { object_id = w.uami_oid }, { msi_res_id = w.uami_rid } } do
      local res, body = imds(base_query(sel))
      assert.equal(200, res.status)
      local c = claims_of(body.access_token)
      assert.equal(w.uami_oid, c.oid)
      assert.equal(w.uami_client, c.appid)
      assert.equal(w.uami_rid, c.xms_mirid)
      assert.equal(w.uami_client, body.client_id)
    end
  end)

  it("accepts the resource, and the path (as msal-node sends it), with a trailing slash", function()
    local res, body = imds(base_query { resource = entra.RESOURCE .. "/" })
    assert.equal(200, res.status)
    assert.equal(entra.RESOURCE .. "/", claims_of(body.access_token).aud)
    res = call(managed_identity.IMDS_PATH .. "/", { query = base_query(), headers = { metadata = "true" } })
    assert.equal(200, res.status)
  end)

  it("answers without the Metadata header with 400, as IMDS does (the SDKs' probe)", function()
    local res, body = imds({}, {})
    assert.equal(400, res.status)
    assert.same({ error = "invalid_request", error_description = "Required metadata header not specified" }, body)
    res = imds(base_query(), { metadata = "false" })
    assert.equal(400, res.status)
  end)

  it("rejects bad requests in IMDS's shape", function()
    local res, body = imds(base_query { client_id = fx.uuid() })
    assert.equal(400, res.status)
    assert.same({ error = "invalid_request", error_description = "Identity not found" }, body)
    res, body = imds(base_query { client_id = w.server })
    assert.equal(400, res.status)
    assert.equal("Identity not found", body.error_description)
    res, body = imds(base_query { client_id = w.uami_client, object_id = w.uami_oid })
    assert.equal(400, res.status)
    assert.equal("invalid_request", body.error)
    res, body = imds { resource = entra.RESOURCE }
    assert.equal(400, res.status)
    assert.matches("api%-version", body.error_description)
    res = imds(base_query { ["api-version"] = "2017-09-01" })
    assert.equal(400, res.status)
    res, body = imds { ["api-version"] = "2018-02-01" }
    assert.equal(400, res.status)
    assert.equal("invalid_request", body.error)
    res, body = imds(base_query { resource = "https://vault.azure.net" })
    assert.equal(400, res.status)
    assert.equal("invalid_resource", body.error)
    assert.matches("^AADSTS500011: ", body.error_description)
    res = imds(base_query(), { metadata = "true", ["x-forwarded-for"] = "10.0.0.1" })
    assert.equal(400, res.status)
  end)

  it("follows the managed identity token lifetime setting", function()
    idp.settings.managed_identity_token_lifetime = 86400
    local _, body = imds(base_query())
    assert.equal("86400", body.expires_in)
    assert.equal(clock:now() + 86400, claims_of(body.access_token).exp)
  end)
end)

describe("App Service", function()
  local function app(query, headers)
    local q = { ["api-version"] = "2019-08-01", resource = entra.RESOURCE }
    for k, v in pairs(query or {}) do q[k] = v end
    return call(managed_identity.APP_SERVICE_PATH, { query = q,
      headers = headers or { ["x-identity-header"] = "header-value-for-tests" } })
  end

  it("issues a token with expires_on as a string of epoch seconds", function()
    local res, body = app()
    assert.equal(200, res.status)
    assert.equal(tostring(clock:now() + 3600), body.expires_on)
    assert.is_string(body.expires_on)
    assert.equal("Bearer", body.token_type)
    assert.equal(entra.RESOURCE, body.resource)
    assert.equal(w.vm_oid, claims_of(body.access_token).oid)
  end)

  it("selects user-assigned identities by client_id, principal_id, object_id, mi_res_id", function()
    for _, sel in ipairs { { client_id = w.uami_client }, { principal_id = w.uami_oid }, { object_id = w.uami_oid },
      { mi_res_id = w.uami_rid } } do
      local res, body = app(sel)
      assert.equal(200, res.status)
      assert.equal(w.uami_oid, claims_of(body.access_token).oid)
    end
  end)

  it("checks the identity header and answers errors in App Service's shape", function()
    local res, body = app(nil, {})
    assert.equal(401, res.status)
    assert.equal(401, body.statusCode)
    res = app(nil, { ["x-identity-header"] = "header-value-for-testS" })
    assert.equal(401, res.status)
    assert.is_nil(res.body:find("header-value-for-tests", 1, true))
    res, body = app { client_id = fx.uuid() }
    assert.equal(400, res.status)
    assert.equal("Unable to load the proper Managed Identity.", body.message)
    assert.is_true(directory.is_guid(body.correlationId))
    res = app { ["api-version"] = "2018-02-01" }
    assert.equal(400, res.status)
    res, body = app { resource = "https://management.azure.com/" }
    assert.equal(400, res.status)
    assert.matches("AADSTS500011", body.message)
  end)

  it("generates and keeps an identity header when the config sets none", function()
    local a = managed_identity.new { directory = dir, idp = idp, clock = clock, state_dir = state_dir }
    local b = managed_identity.new { directory = dir, idp = idp, clock = clock, state_dir = state_dir }
    assert.is_true(#a.identity_header >= 16)
    assert.equal(a.identity_header, b.identity_header)
    assert.equal(a.identity_header, fx.read(a:identity_header_file()))
    local ok, out = fx.run(("stat -c %%a '%s'"):format(a:identity_header_file()))
    assert.is_true(ok)
    assert.equal("600", out:match("%d+"))
    assert.are_not.equal(a.identity_header,
      managed_identity.new { directory = dir, idp = idp, clock = clock }.identity_header)
    assert.is_true(managed_identity.validate(nil))
    assert.is_nil(managed_identity.validate { identity_header = 5 })
    assert.is_nil(managed_identity.validate "x")
  end)
end)

describe("MSI_ENDPOINT", function()
  it("serves Cloud Shell's POST form", function()
    local res, body = call(managed_identity.MSI_ENDPOINT_PATH, { method = "POST",
      headers = { metadata = "true", ["content-type"] = "application/x-www-form-urlencoded" },
      body = "resource=" .. entra.RESOURCE:gsub(":", "%%3A"):gsub("/", "%%2F") })
    assert.equal(200, res.status)
    assert.equal(tostring(clock:now() + 3600), body.expires_on)
    assert.equal(w.vm_oid, claims_of(body.access_token).oid)
    res = call(managed_identity.MSI_ENDPOINT_PATH, { method = "POST", headers = {}, body = "resource=x" })
    assert.equal(400, res.status)
  end)

  it("serves App Service 2017 with a date-string expires_on", function()
    local res, body = call(managed_identity.MSI_ENDPOINT_PATH, {
      query = { ["api-version"] = "2017-09-01", resource = entra.RESOURCE, clientid = w.uami_client },
      headers = { secret = "header-value-for-tests" } })
    assert.equal(200, res.status)
    assert.matches("^%d%d/%d%d/%d%d%d%d %d%d:%d%d:%d%d %+00:00$", body.expires_on)
    assert.equal(os.date("!%m/%d/%Y %H:%M:%S +00:00", clock:now() + 3600), body.expires_on)
    assert.equal(w.uami_oid, claims_of(body.access_token).oid)
    res = call(managed_identity.MSI_ENDPOINT_PATH, {
      query = { ["api-version"] = "2017-09-01", resource = entra.RESOURCE }, headers = { secret = "nope" } })
    assert.equal(401, res.status)
  end)
end)

describe("Azure Arc", function()
  local function arc(headers, query)
    local q = { ["api-version"] = "2020-06-01", resource = entra.RESOURCE }
    for k, v in pairs(query or {}) do q[k] = v end
    return call(managed_identity.ARC_PATH, { query = q, headers = headers })
  end

  it("challenges with a key file, then accepts its contents once", function()
    local res = arc { metadata = "true" }
    assert.equal(401, res.status)
    local path = res.headers["www-authenticate"]:match("^Basic realm=(.+)$")
    assert.matches("^" .. state_dir:gsub("%p", "%%%0") .. "/arc/.+%.key$", path)
    local key = fx.read(path)
    local ok, out = fx.run(("stat -c %%a '%s'"):format(path))
    assert.is_true(ok)
    assert.equal("600", out:match("%d+"))
    local body
    res, body = arc { metadata = "true", authorization = "Basic " .. key }
    assert.equal(200, res.status)
    assert.equal(w.vm_oid, claims_of(body.access_token).oid)
    assert.equal(w.vm_oid, body.object_id)
    -- single use
    res = arc { metadata = "true", authorization = "Basic " .. key }
    assert.equal(401, res.status)
  end)

  it("echoes a user-assigned identity and refuses stale or wrong keys", function()
    local path = arc({ metadata = "true" }).headers["www-authenticate"]:match("realm=(.+)$")
    local res, body = arc({ metadata = "true", authorization = "Basic " .. fx.read(path) },
      { msi_res_id = w.uami_rid })
    assert.equal(200, res.status)
    assert.equal(w.uami_rid, body.msi_res_id)
    assert.equal(w.uami_client, body.client_id)
    res = arc { metadata = "true", authorization = "Basic wrong" }
    assert.equal(401, res.status)
    path = arc({ metadata = "true" }).headers["www-authenticate"]:match("realm=(.+)$")
    local key = fx.read(path)
    clock:advance(301)
    res = arc { metadata = "true", authorization = "Basic " .. key }
    assert.equal(401, res.status)
    res = arc({ metadata = "true" }, { ["api-version"] = "2018-02-01" })
    assert.equal(400, res.status)
  end)
end)
