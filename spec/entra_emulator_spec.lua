-- Microsoft Entra ID end to end against signalr-emulator over HTTPS (its CA trusted with
-- ca_file): every credential kind gets a token, errors carry the AADSTS code or status,
-- cross-tenant apps, roles at every scope, the cache counted by the emulator with its
-- clock moved, identity faults during refresh, and local auth disabled.
local signalr = require "signalr"
local cjson = require "cjson"
local digest = require "openssl.digest"
local emulator = require "spec.helpers.emulator"
local hub_client = require "spec.helpers.hub_client"
local H = require "spec.helpers.entra"

local uuid = emulator.uuid
local SIGNALR_RESOURCE = "https://signalr.azure.com"

-- The identities these specs need, generated now.
local function make_world()
  local w = {
    tenant_a = uuid(), tenant_b = uuid(), sub_a = uuid(), sub_b = uuid(),
    issuer = "https://oidc.cluster.example.test", subject = "system:serviceaccount:default:app",
    identity_header = H.secret(),
  }
  for _, name in ipairs { "server", "owner", "restowner", "restreader", "reader", "norole", "scoped", "multi",
    "lonely", "cert", "workload", "uami" } do
    w[name] = uuid()
    w[name .. "_sp"] = uuid()
    w[name .. "_secret"] = H.secret()
  end
  w.vm, w.multi_sp_b, w.group, w.group_inner = uuid(), uuid(), uuid(), uuid()
  w.uami_rid = "/subscriptions/" .. w.sub_a .. "/resourceGroups/ids/providers/Microsoft.ManagedIdentity/"
    .. "userAssignedIdentities/uami1"
  w.cert_key = H.rsa_key(1)
  w.cert_crt, w.cert_pem = H.certificate(w.cert_key, "entra-cert-app")
  w.issuer_key = H.rsa_key(2)
  local function app(name, extra)
    local a = { name = name, client_id = w[name], secrets = { w[name .. "_secret"] },
      service_principal = { object_id = w[name .. "_sp"] } }
    for k, v in pairs(extra or {}) do a[k] = v end
    return a
  end
  w.rid_a = emulator.resource_id(w.sub_a, "signalr1")
  w.rid_b = emulator.resource_id(w.sub_b, "signalr-b")
  local function grant(principal, role, scope)
    return { principal_id = principal, role = role, scope = scope or w.rid_a }
  end
  w.config = {
    port = 0, imds_port = 0,
    tenants = {
      { id = w.tenant_a, name = "contoso",
        apps = {
          app "server", app "owner", app "restowner", app "restreader", app "reader", app "norole", app "scoped",
          app("multi", { sign_in_audience = "AzureADMultipleOrgs", service_principal = false }),
          app("lonely", { sign_in_audience = "AzureADMultipleOrgs" }),
          app("cert", { secrets = {}, certificates = { w.cert_pem } }),
          app("workload", { secrets = {}, federated_credentials = { { name = "k8s", issuer = w.issuer,
            subject = w.subject } } }),
        },
        managed_identities = {
          { name = "vm1", type = "system_assigned", object_id = w.vm },
          { name = "uami1", type = "user_assigned", client_id = w.uami, object_id = w.uami_sp,
            resource_id = w.uami_rid },
        },
        groups = {
          { name = "signalr-servers", object_id = w.group, members = { w.group_inner } },
          { name = "nested", object_id = w.group_inner, members = { w.scoped_sp } },
        },
      },
      { id = w.tenant_b, name = "fabrikam",
        service_principals = { { app_id = w.multi, object_id = w.multi_sp_b } } },
    },
    federated_issuers = { { issuer = w.issuer, public_key = w.issuer_key:toPEM("public") } },
    subscriptions = { { id = w.sub_a, tenant = w.tenant_a }, { id = w.sub_b, tenant = w.tenant_b } },
    management_groups = { { id = "mg-parent" },
      { id = "mg-child", parent = "mg-parent", subscriptions = { w.sub_a } } },
    resources = {
      { name = "signalr1", tenant = w.tenant_a, subscription = w.sub_a, port = 0 },
      { name = "signalr-b", tenant = w.tenant_b, subscription = w.sub_b, port = 0 },
    },
    role_assignments = {
      grant(w.server_sp, "SignalR App Server"), grant(w.owner_sp, "SignalR Service Owner"),
      grant(w.restowner_sp, "SignalR REST API Owner"), grant(w.restreader_sp, "SignalR REST API Reader"),
      grant(w.reader_sp, "Reader"), grant(w.cert_sp, "SignalR App Server"),
      grant(w.workload_sp, "SignalR App Server"), grant(w.vm, "SignalR App Server"),
      grant(w.uami_sp, "SignalR App Server"), grant(w.multi_sp_b, "SignalR App Server", w.rid_b),
      grant(w.lonely_sp, "SignalR App Server"),
    },
    managed_identity = { identity_header = w.identity_header },
  }
  return w
end

-- A federated token as a Kubernetes cluster would issue it, signed by the issuer's key.
local function federated_token(w, exp_offset)
  local now = os.time()
  local header = H.b64url(cjson.encode { alg = "RS256", typ = "JWT", kid = "k1" })
  local claims = H.b64url(cjson.encode { iss = w.issuer, sub = w.subject, aud = "api://AzureADTokenExchange",
    iat = now - 60, nbf = now - 60, exp = now + (exp_offset or 3600), jti = uuid() })
  local input = header .. "." .. claims
  local md = digest.new("sha256")
  md:update(input)
  return input .. "." .. H.b64url(w.issuer_key:sign(md))
end

local emu, w

local function start(world)
  return emulator.start { raw_config = world.config }
end

local function cred_secret(name, tenant, secret)
  return assert(signalr.credential.client_secret { tenant_id = tenant or w.tenant_a, client_id = w[name] or name,
    client_secret = secret or w[name .. "_secret"], authority_host = emu.authority })
end

local function service(cred, resource, extra)
  local o = { endpoint = emu.resources[resource or "signalr1"].endpoint, credential = cred, ca_file = emu.ca_file }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(signalr.new(o))
end

-- The emulator accepts the negotiated token: a client connects with it.
local function client_connects(neg, resource)
  local c, err, status = hub_client.connect { endpoint = emu.resources[resource or "signalr1"].endpoint,
    hub = "chat", token = neg.accessToken, ca_file = emu.ca_file }
  if c then c:close() end
  return c ~= nil, err, status
end

local function negotiates(cred, resource)
  local neg, err = service(cred, resource):negotiate("chat", { user_id = "u1" })
  if not neg then return nil, err end
  local ok, why = client_connects(neg, resource)
  assert(ok, why)
  return neg
end

local function entra_claims(cred)
  local tok = assert(service(cred):get_token())
  local _, claims = H.jwt(tok)
  return claims
end

local function all_secrets()
  local s = { w.identity_header }
  for k, v in pairs(w) do if k:match("_secret$") then s[#s + 1] = v end end
  return s
end

describe("Entra credentials against the emulator", function()
  setup(function()
    w = make_world()
    emu = start(w)
  end)
  teardown(function() if emu then emu:stop() end end)

  describe("each kind gets a token", function()
    it("client_secret", function()
      local c = cred_secret("server")
      local claims = entra_claims(c)
      assert.same({ SIGNALR_RESOURCE, w.tenant_a, w.server, w.server_sp },
        { claims.aud, claims.tid, claims.appid, claims.oid })
      local neg = assert(negotiates(c))
      assert.matches("^" .. emu.resources.signalr1.endpoint:gsub("%p", "%%%0") .. "/client/%?hub=chat$", neg.url)
    end)

    it("certificate, RS256 and PS256 with x5c", function()
      local dir = H.tmpdir()
      local path = H.write(dir .. "/cert.pem", w.cert_pem .. w.cert_key:toPEM("private"), "600")
      for _, o in ipairs { {}, { algorithm = "PS256", send_certificate_chain = true } } do
        local opts = { tenant_id = w.tenant_a, client_id = w.cert, certificate_path = path,
          authority_host = emu.authority }
        for k, v in pairs(o) do opts[k] = v end
        local c = assert(signalr.credential.certificate(opts))
        assert.equal(w.cert_sp, entra_claims(c).oid)
        assert(negotiates(c))
      end
      H.rmtree(dir)
    end)

    it("client_assertion (a function) and workload_identity (a token file)", function()
      local calls = 0
      local c = assert(signalr.credential.client_assertion { tenant_id = w.tenant_a, client_id = w.workload,
        authority_host = emu.authority, assertion = function() calls = calls + 1; return federated_token(w) end })
      assert.equal(w.workload_sp, entra_claims(c).oid)
      assert.equal(1, calls)
      local dir = H.tmpdir()
      local file = H.write(dir .. "/token", federated_token(w))
      local wi = assert(signalr.credential.workload_identity { env = { AZURE_TENANT_ID = w.tenant_a,
        AZURE_CLIENT_ID = w.workload, AZURE_FEDERATED_TOKEN_FILE = file, AZURE_AUTHORITY_HOST = emu.authority } })
      assert(negotiates(wi))
      H.rmtree(dir)
    end)

    it("managed_identity: IMDS, system- and user-assigned (client id, object id, resource id)", function()
      local env = { AZURE_POD_IDENTITY_AUTHORITY_HOST = emu.imds }
      local system = assert(signalr.credential.managed_identity { env = env })
      assert.equal(w.vm, entra_claims(system).oid)
      assert(negotiates(system))
      for _, sel in ipairs { { client_id = w.uami }, { object_id = w.uami_sp }, { resource_id = w.uami_rid } } do
        sel.env = env
        assert.equal(w.uami_sp, entra_claims(assert(signalr.credential.managed_identity(sel))).oid)
      end
      local _, err = service(assert(signalr.credential.managed_identity { env = env, client_id = uuid() }))
        :get_token()
      assert.equal("credential_unavailable", err.kind)
      assert.equal(400, err.status)
    end)

    it("managed_identity: App Service, Cloud Shell, App Service 2017 and Azure Arc", function()
      local envs = {
        { IDENTITY_ENDPOINT = emu.imds .. "/msi/token", IDENTITY_HEADER = w.identity_header },
        { MSI_ENDPOINT = emu.imds .. "/msi/legacy" },
        { MSI_ENDPOINT = emu.imds .. "/msi/legacy", MSI_SECRET = w.identity_header },
        { IDENTITY_ENDPOINT = emu.imds .. "/arc/metadata/identity/oauth2/token", IMDS_ENDPOINT = emu.imds },
      }
      for _, env in ipairs(envs) do
        local c = assert(signalr.credential.managed_identity { env = env,
          arc_key_dir = emulator.state_dir() .. "/arc" })
        local tok, exp = service(c):get_token()
        assert(tok, exp and tostring(exp))
        assert.is_true(exp > os.time() + 600)
        assert.equal(w.vm, (select(2, H.jwt(tok))).oid)
      end
      local wrong = assert(signalr.credential.managed_identity { env = { IDENTITY_ENDPOINT = emu.imds .. "/msi/token",
        IDENTITY_HEADER = "not-the-header" } })
      local _, err = service(wrong):get_token()
      assert.equal(401, err.status)
      H.no_secret(H.error_text(err), { w.identity_header, "not-the-header" })
    end)

    it("environment and default", function()
      local env = { AZURE_TENANT_ID = w.tenant_a, AZURE_CLIENT_ID = w.server, AZURE_CLIENT_SECRET = w.server_secret,
        AZURE_AUTHORITY_HOST = emu.authority }
      assert.equal(w.server_sp, entra_claims(assert(signalr.credential.environment { env = env })).oid)
      assert(negotiates(assert(signalr.credential.default { env = env })))
      -- nothing but IMDS configured: the default chain probes it and uses the VM's identity
      local mi_only = assert(signalr.credential.default { env = { AZURE_POD_IDENTITY_AUTHORITY_HOST = emu.imds },
        az_runner = function() error("not reached") end })
      assert.equal(w.vm, entra_claims(mi_only).oid)
    end)

    it("azure_cli (a fake az printing an emulator-issued token)", function()
      local _, issued = emu:admin("POST", "/admin/tokens", { tenant_id = w.tenant_a, principal_id = w.server_sp })
      local dir = H.tmpdir()
      local _, claims = H.jwt(issued.access_token)
      H.write(dir .. "/out.json", cjson.encode { accessToken = issued.access_token, expires_on = claims.exp,
        tokenType = "Bearer", tenant = w.tenant_a })
      local az = H.write(dir .. "/az", "#!/bin/sh\ncat '" .. dir .. "/out.json'\n", "755")
      local c = assert(signalr.credential.azure_cli { command = az, tenant_id = w.tenant_a })
      assert(negotiates(c))
      H.rmtree(dir)
    end)

    it("static and from_function", function()
      local _, issued = emu:admin("POST", "/admin/tokens", { tenant_id = w.tenant_a, principal_id = w.owner_sp })
      local _, claims = H.jwt(issued.access_token)
      assert(negotiates(signalr.credential.static(issued.access_token, claims.exp)))
      assert(negotiates(signalr.credential.from_function(function() return issued.access_token, claims.exp end)))
    end)
  end)

  describe("errors carry the right kind and the AADSTS code or status, never a secret", function()
    local function fails(cred, kind, code_or_status)
      local neg, err = service(cred):negotiate("chat")
      assert.is_nil(neg)
      assert.equal(kind, err.kind)
      if type(code_or_status) == "string" then
        assert.equal(code_or_status, err.code)
        assert.matches(code_or_status, tostring(err), 1, true)
      else
        assert.equal(code_or_status, err.status)
        assert.matches(tostring(code_or_status), tostring(err), 1, true)
      end
      H.no_secret(H.error_text(err), all_secrets())
      return err
    end

    it("wrong secret", function()
      fails(cred_secret("server", nil, H.secret()), "authentication_failed", "AADSTS7000215")
    end)
    it("unknown app", function()
      fails(cred_secret(uuid(), nil, H.secret()), "authentication_failed", "AADSTS700016")
    end)
    it("wrong tenant", function()
      local err = fails(cred_secret("server", uuid()), "authentication_failed", "AADSTS90002")
      assert.matches("authority host", err.hint, 1, true)
    end)
    it("unprovisioned multitenant app", function()
      local err = fails(cred_secret("lonely", w.tenant_b), "authentication_failed", "AADSTS700016")
      assert.matches("provisioned", err.hint, 1, true)
    end)
    it("expired assertion", function()
      local c = assert(signalr.credential.client_assertion { tenant_id = w.tenant_a, client_id = w.workload,
        authority_host = emu.authority, assertion = function() return federated_token(w, -600) end })
      fails(c, "authentication_failed", "AADSTS700024")
    end)
    it("missing role", function()
      local err = fails(cred_secret("norole"), "forbidden", 403)
      assert.matches("SignalR App Server", err.hint, 1, true)
    end)
  end)

  describe("cross-tenant", function()
    it("a multitenant app from tenant A, provisioned in tenant B, negotiates against B's resource", function()
      local c = cred_secret("multi", w.tenant_b)
      local claims = entra_claims(c)
      assert.same({ w.tenant_b, w.multi_sp_b }, { claims.tid, claims.oid })
      assert(negotiates(c, "signalr-b"))
    end)

    it("a token from another tenant is refused by the resource with a clear error", function()
      local neg, err = service(cred_secret("server"), "signalr-b"):negotiate("chat")
      assert.is_nil(neg)
      assert.equal("unauthorized", err.kind)
      assert.equal(401, err.status)
      assert.matches("tenant", err.hint, 1, true)
    end)
  end)

  describe("roles", function()
    it("SignalR App Server and SignalR Service Owner can negotiate", function()
      assert(negotiates(cred_secret("server")))
      assert(negotiates(cred_secret("owner")))
    end)

    for _, name in ipairs { "restowner", "restreader", "reader" } do
      it(name .. " cannot get a key, and the error names the roles that could", function()
        local neg, err = service(cred_secret(name)):negotiate("chat")
        assert.is_nil(neg)
        assert.equal("forbidden", err.kind)
        for _, s in ipairs { "SignalR App Server", "SignalR Service Owner", "30 minutes" } do
          assert.matches(s, tostring(err), 1, true)
        end
      end)
    end

    local scopes = {
      { "the resource", function() return w.rid_a end },
      { "its resource group", function() return "/subscriptions/" .. w.sub_a .. "/resourceGroups/emulator-rg" end },
      { "its subscription", function() return "/subscriptions/" .. w.sub_a end },
      { "its management group", function() return "/providers/Microsoft.Management/managementGroups/mg-child" end },
      { "the parent management group (inherited)",
        function() return "/providers/Microsoft.Management/managementGroups/mg-parent" end },
    }
    for _, s in ipairs(scopes) do
      it("an assignment at " .. s[1] .. " lets the app negotiate", function()
        local before, why = service(cred_secret("scoped")):negotiate("chat")
        assert.is_nil(before)
        assert.equal("forbidden", why.kind)
        local status, body = emu:admin("POST", "/admin/role-assignments", { principal_id = w.scoped_sp,
          role = "SignalR App Server", scope = s[2]() })
        assert.equal(201, status, cjson.encode(body))
        finally(function() emu:admin("DELETE", "/admin/role-assignments/" .. body.id) end)
        assert(negotiates(cred_secret("scoped")))
      end)
    end

    it("an assignment to a group holding the app's service principal (through a nested group) counts", function()
      assert.is_nil((service(cred_secret("scoped")):negotiate("chat")))
      local status, body = emu:admin("POST", "/admin/role-assignments", { principal_id = w.group,
        role = "SignalR App Server", scope = w.rid_a })
      assert.equal(201, status, cjson.encode(body))
      finally(function() emu:admin("DELETE", "/admin/role-assignments/" .. body.id) end)
      assert(negotiates(cred_secret("scoped")))
    end)
  end)
end)

describe("the Entra cache counted by the emulator", function()
  local offset = 0
  local function now() return os.time() + offset end
  local function advance(s)
    local status = emu:admin("POST", "/admin/clock", { advance = s })
    assert.equal(200, status)
    offset = offset + s
  end
  local function count(route, status)
    local _, c = emu:admin("GET", "/admin/counters")
    local r = c.routes[route]
    return r and r[tostring(status or 200)] or 0
  end
  local TOKEN, KEY = "POST /{tenant}/oauth2/v2.0/token", "GET /api/v1/auth/accessKey"

  setup(function()
    w = make_world()
    emu = start(w)
  end)
  teardown(function() if emu then emu:stop() end end)

  it("1,000 negotiates make one token request and one key request; refresh-ahead, faults and expiry", function()
    local svc = service(cred_secret("server"), nil, { clock = now, temporary_key = { retry_interval = 0.5 } })
    emu:admin("DELETE", "/admin/counters")
    local first = assert(svc:negotiate("chat"))
    for i = 2, 1000 do assert(svc:negotiate("chat", { user_id = "user-" .. i })) end
    assert.same({ 1, 1 }, { count(TOKEN), count(KEY) })
    local kid1 = H.jwt(first.accessToken).kid
    assert.truthy(client_connects(first))

    -- 55 minutes on: the key is due (and the 1-hour token is within 5 minutes of expiry)
    advance(55 * 60)
    local second = assert(svc:negotiate("chat"))
    assert.same({ 2, 2 }, { count(TOKEN), count(KEY) })
    local kid2 = H.jwt(second.accessToken).kid
    assert.not_equal(kid1, kid2)
    assert.truthy(client_connects(second))

    -- the identity endpoint fails during the next refresh, when the Entra token has expired:
    -- negotiate keeps working on the key, still valid (61 of its 90 minutes)
    assert.equal(201, (emu:admin("POST", "/admin/faults", { route = "/{tenant}/oauth2/v2.0/token", kind = "status",
      status = 503 })))
    finally(function() emu:admin("DELETE", "/admin/faults") end)
    advance(61 * 60)
    for _ = 1, 100 do
      local neg = assert(svc:negotiate("chat"))
      assert.equal(kid2, H.jwt(neg.accessToken).kid)
    end
    assert.truthy(client_connects(assert(svc:negotiate("chat"))))
    assert.equal(3, count(TOKEN, 503)) -- one refresh round (3 tries on a 503), then the 30 s pause
    assert.equal(2, count(KEY))

    -- past the key's 90 minutes: fail closed
    advance(30 * 60)
    local neg, err = svc:negotiate("chat")
    assert.is_nil(neg)
    assert.equal("service_error", err.kind)
    assert.matches("no valid temporary access key", err.message, 1, true)
    assert.matches("503", err.message, 1, true)

    -- the identity endpoint recovers: after the pause, a new key
    emu:admin("DELETE", "/admin/faults")
    advance(31)
    local back = assert(svc:negotiate("chat"))
    assert.not_equal(kid2, H.jwt(back.accessToken).kid)
    assert.truthy(client_connects(back))
  end)

  it("shows token expiry with a short lifetime: a new token when the old one is gone", function()
    assert.equal(200, (emu:admin("PUT", "/admin/settings", { token_lifetime = 120 })))
    local svc = service(cred_secret("owner"), nil, { clock = now })
    emu:admin("DELETE", "/admin/counters")
    local t1, e1 = svc:get_token()
    assert.is_true(e1 - now() <= 120)
    -- a 2-minute token is always inside the 5-minute refresh window: each use asks Entra
    local t2 = svc:get_token()
    assert.equal(2, count(TOKEN))
    assert.not_equal(t1, t2)
    advance(121)
    assert(svc:get_token())
    assert.equal(3, count(TOKEN))
    emu:admin("PUT", "/admin/settings", { token_lifetime = 3600 })
  end)

  it("with local auth disabled, access-key tokens are refused and Entra still works", function()
    local res = emu.resources.signalr1
    local key_svc = assert(signalr.new { connection_string = res.connection_string, clock = now,
                                         ca_file = emu.ca_file })
    local entra_svc = service(cred_secret("server"), nil, { clock = now })
    assert.truthy(client_connects(assert(key_svc:negotiate("chat"))))
    assert.equal(200, (emu:admin("POST", "/admin/resources/signalr1/local-auth", { enabled = false })))
    local ok, why, status = client_connects(assert(key_svc:negotiate("chat")))
    assert.is_false(ok)
    assert.equal(401, status)
    assert.matches("local authentication is disabled", why, 1, true)
    -- The SDK's own calls with the key fail too, and say why it may be.
    local sent, err = key_svc:hub("chat"):send_to_all("m", {})
    assert.is_nil(sent)
    assert.equal("unauthorized", err.kind)
    assert.matches("local authentication", tostring(err), 1, true)
    assert.truthy(client_connects(assert(entra_svc:negotiate("chat"))))
    emu:admin("POST", "/admin/resources/signalr1/local-auth", { enabled = true })
  end)
end)
