-- Interop with code nobody here wrote: @azure/identity (npm, pinned 4.13.1) gets Entra
-- tokens from signalr-emulator with ClientSecretCredential, ClientCertificateCredential,
-- WorkloadIdentityCredential and ManagedIdentityCredential (IMDS via
-- AZURE_POD_IDENTITY_AUTHORITY_HOST, App Service via IDENTITY_ENDPOINT/IDENTITY_HEADER),
-- trusting the emulator's CA through NODE_EXTRA_CA_CERTS.
local cjson = require "cjson"
local jwt = require "signalr.emulator.jwt"
local directory = require "signalr.emulator.directory"
local emulator = require "spec.helpers.emulator"
local fx = require "spec.helpers.identity_fixtures"

local INTEROP = emulator.ROOT .. "/spec/interop"
local w, emu, tmp, identity_header

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Runs the Node script in a clean environment; returns its decoded JSON line.
local function node(mode, vars)
  local env = { PATH = os.getenv("PATH"), HOME = os.getenv("HOME") or tmp, NODE_EXTRA_CA_CERTS = emu.ca_file,
    EMU_AUTHORITY = emu.authority }
  for k, v in pairs(vars or {}) do env[k] = v end
  local parts = { "env", "-i" }
  for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. shell_quote(v) end
  parts[#parts + 1] = "timeout 90 node " .. shell_quote(INTEROP .. "/identity.mjs") .. " " .. mode
  local p = io.popen(table.concat(parts, " ") .. " 2>" .. shell_quote(tmp .. "/node-stderr.txt"))
  local line = p:read("l")
  p:close()
  local result = line and cjson.decode(line)
  assert(type(result) == "table", "node printed no result: " .. fx.read(tmp .. "/node-stderr.txt"):sub(1, 2000))
  assert(result.ok, "@azure/identity failed: " .. tostring(result.message))
  return result
end

local function assert_token(result, tenant, oid, appid)
  local c = result.claims
  assert.equal("https://signalr.azure.com", c.aud)
  assert.equal(tenant, c.tid)
  assert.equal(oid, c.oid)
  assert.equal(appid, c.appid)
  assert.equal(emu.authority .. "/" .. tenant .. "/v2.0", c.iss)
  assert.equal("RS256", result.header.alg)
  assert.is_true(result.verified, "Node's crypto did not verify the signature against the JWKS")
  -- MSAL computes expiry from expires_in and its own clock
  assert.is_true(math.abs(c.exp * 1000 - result.expiresOnTimestamp) <= 5000)
end

-- The object id of an app's service principal in a tenant (derived ids are stable).
local function dir_sp_object(tenant, client_id)
  local dir = assert(directory.new(w.config))
  return dir:service_principal(dir:tenant(tenant), client_id).object_id
end

setup(function()
  local ok, out = fx.run("test -d " .. shell_quote(INTEROP .. "/node_modules/@azure/identity") .. " && node --version")
  assert(ok, "@azure/identity is not installed: run `npm ci` in spec/interop (.ci/setup does). " .. out)
  w = fx.world()
  tmp = fx.tmpdir()
  identity_header = fx.secret()
  local cfg = w.config
  cfg.port, cfg.imds_port = 0, 0
  local sub = fx.uuid()
  cfg.subscriptions = { { id = sub, tenant = w.tenant_a } }
  cfg.resources = { { name = "chat", tenant = w.tenant_a, subscription = sub, port = 0,
    access_keys = { fx.secret() .. "aaaa", fx.secret() .. "bbbb" } } }
  cfg.managed_identity = { identity_header = identity_header }
  emu = emulator.start { raw_config = cfg }
end)

teardown(function()
  if emu then emu:stop() end
  fx.rmtree(tmp)
end)

describe("@azure/identity against the emulator", function()
  it("ClientSecretCredential", function()
    local r = node("secret", { EMU_TENANT = w.tenant_a, EMU_CLIENT_ID = w.server, EMU_CLIENT_SECRET = w.secret })
    assert_token(r, w.tenant_a, w.sp_server, w.server)
    assert.equal("1", r.claims.azpacr)
  end)

  it("ClientSecretCredential for a multitenant app in the tenant that provisioned it", function()
    local r = node("secret", { EMU_TENANT = w.domain_b, EMU_CLIENT_ID = w.multi, EMU_CLIENT_SECRET = w.multi_secret })
    assert_token(r, w.tenant_b, w.sp_multi_b, w.multi)
  end)

  it("reports Entra's code when the secret is wrong", function()
    local ok, err = pcall(node, "secret", { EMU_TENANT = w.tenant_a, EMU_CLIENT_ID = w.server,
      EMU_CLIENT_SECRET = "wrong-secret" })
    assert.is_false(ok)
    assert.matches("7000215", err)
  end)

  it("ClientCertificateCredential with a PEM holding the certificate and its key", function()
    local pem = fx.write(tmp .. "/cert.pem", w.cert_pem .. w.cert_key:toPEM("private"), "600")
    local r = node("certificate", { EMU_TENANT = w.tenant_a, EMU_CLIENT_ID = w.cert_app, EMU_CERT_PATH = pem })
    local sp = dir_sp_object(w.tenant_a, w.cert_app)
    assert_token(r, w.tenant_a, sp, w.cert_app)
    assert.equal("2", r.claims.azpacr)
  end)

  it("WorkloadIdentityCredential with a federated token file", function()
    local now = os.time()
    local assertion = jwt.encode({ alg = "RS256", kid = "k1" }, { iss = w.issuer, sub = w.subject,
      aud = directory.TOKEN_EXCHANGE_AUDIENCE, iat = now, nbf = now, exp = now + 3600 }, w.issuer_key)
    local file = fx.write(tmp .. "/federated-token", assertion, "600")
    local r = node("workload", { EMU_TENANT = w.tenant_a, EMU_CLIENT_ID = w.workload, EMU_TOKEN_FILE = file })
    assert_token(r, w.tenant_a, dir_sp_object(w.tenant_a, w.workload), w.workload)
  end)

  it("ManagedIdentityCredential through IMDS (system- and user-assigned)", function()
    local r = node("imds", { AZURE_POD_IDENTITY_AUTHORITY_HOST = emu.imds })
    assert_token(r, w.tenant_a, w.vm_oid, r.claims.appid)
    assert.is_string(r.claims.xms_mirid)
    r = node("imds", { AZURE_POD_IDENTITY_AUTHORITY_HOST = emu.imds, EMU_MI_CLIENT_ID = w.uami_client })
    assert_token(r, w.tenant_a, w.uami_oid, w.uami_client)
    assert.equal(w.uami_rid, r.claims.xms_mirid)
    r = node("imds", { AZURE_POD_IDENTITY_AUTHORITY_HOST = emu.imds, EMU_MI_RESOURCE_ID = w.uami_rid })
    assert_token(r, w.tenant_a, w.uami_oid, w.uami_client)
  end)

  it("ManagedIdentityCredential through the App Service endpoint", function()
    local vars = { IDENTITY_ENDPOINT = emu.imds .. "/msi/token", IDENTITY_HEADER = identity_header }
    local r = node("appservice", vars)
    assert_token(r, w.tenant_a, w.vm_oid, r.claims.appid)
    vars.EMU_MI_OBJECT_ID = w.uami_oid
    r = node("appservice", vars)
    assert_token(r, w.tenant_a, w.uami_oid, w.uami_client)
  end)
end)
