-- Test-time identity fixtures: RSA keys, self-signed certificates, temp files, random ids.
-- Nothing here is committed material: every key and secret is generated when a spec runs.
local pkey = require "openssl.pkey"
local x509 = require "openssl.x509"
local xname = require "openssl.x509.name"
local bignum = require "openssl.bignum"
local rand = require "openssl.rand"
local directory = require "signalr.emulator.directory"

local fixtures = {}

local key_pool = {}

-- RSA 2048 keys are slow to generate; specs may share a few by index.
function fixtures.rsa_key(index)
  if index and key_pool[index] then return key_pool[index] end
  local key = pkey.new { type = "RSA", bits = 2048 }
  if index then key_pool[index] = key end
  return key
end

-- A self-signed certificate for `key`. Returns the x509 object and its PEM text.
function fixtures.certificate(key, cn, not_before, not_after)
  local now = os.time()
  local crt = x509.new()
  crt:setVersion(3)
  crt:setSerial(bignum.new(math.random(1, 2 ^ 30)))
  local name = xname.new()
  name:add("CN", cn or "emulator-test")
  crt:setSubject(name)
  crt:setIssuer(name)
  crt:setPublicKey(key)
  crt:setLifetime(not_before or now - 3600, not_after or now + 86400)
  crt:sign(key)
  return crt, crt:toPEM()
end

fixtures.uuid = directory.random_guid

-- A random secret in the shape of an Entra client secret (40 characters).
function fixtures.secret()
  local alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789~._-"
  local out = {}
  for i, c in ipairs { rand.bytes(40):byte(1, 40) } do
    local j = c % #alphabet + 1
    out[i] = alphabet:sub(j, j)
  end
  return table.concat(out)
end

function fixtures.tmpdir()
  local p = io.popen("mktemp -d")
  local dir = p:read("l")
  p:close()
  return dir
end

function fixtures.write(path, content, mode)
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
  if mode then os.execute(("chmod %s '%s'"):format(mode, path)) end
  return path
end

function fixtures.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function fixtures.rmtree(dir)
  if dir and dir:match("^/tmp/") then os.execute(("rm -rf '%s'"):format(dir)) end
end

-- Runs a shell command; returns true/false and its combined output.
function fixtures.run(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return ok == true, out
end

-- A fake emulator clock that specs move by hand.
function fixtures.clock(start)
  local c = { t = start or 1700000000 }
  function c.now(self) return self.t end
  function c.advance(self, s) self.t = self.t + s; return self.t end
  return c
end

-- The directory every identity spec uses: two tenants, single- and multi-tenant apps
-- (one provisioned in the second tenant, one not), a certificate app, a workload
-- identity app, managed identities, a user and nested groups. Returns the config and a
-- table of the secrets, keys and ids it contains (all generated now).
function fixtures.world()
  local w = {
    tenant_a = fixtures.uuid(), tenant_b = fixtures.uuid(),
    server = fixtures.uuid(), multi = fixtures.uuid(), lonely = fixtures.uuid(),
    cert_app = fixtures.uuid(), workload = fixtures.uuid(),
    secret = fixtures.secret(), expired_secret = fixtures.secret(), multi_secret = fixtures.secret(),
    lonely_secret = fixtures.secret(),
    sp_multi_b = fixtures.uuid(), user = fixtures.uuid(), group_outer = fixtures.uuid(),
    group_inner = fixtures.uuid(), sp_server = fixtures.uuid(), vm_oid = fixtures.uuid(),
    uami_client = fixtures.uuid(), uami_oid = fixtures.uuid(),
    issuer = "https://oidc.cluster.example.test",
    subject = "system:serviceaccount:default:workload",
    domain_a = "contoso.example.test", domain_b = "fabrikam.example.test",
  }
  w.cert_key = fixtures.rsa_key(1)
  w.cert, w.cert_pem = fixtures.certificate(w.cert_key, "cert-app")
  w.issuer_key = fixtures.rsa_key(2)
  w.other_key = fixtures.rsa_key(3)
  w.other_cert, w.other_cert_pem = fixtures.certificate(w.other_key, "unregistered")
  w.uami_rid = "/subscriptions/" .. fixtures.uuid() .. "/resourceGroups/rg1/providers/"
    .. "Microsoft.ManagedIdentity/userAssignedIdentities/uami1"
  w.config = {
    tenants = {
      {
        id = w.tenant_a, domain = w.domain_a, name = "Contoso",
        apps = {
          { name = "server", client_id = w.server, service_principal = { object_id = w.sp_server },
            secrets = { w.secret, { value = w.expired_secret, expires = "2020-01-01T00:00:00Z" } } },
          { name = "multi", client_id = w.multi, sign_in_audience = "AzureADMultipleOrgs",
            secrets = { w.multi_secret } },
          { name = "lonely", client_id = w.lonely, sign_in_audience = "AzureADMultipleOrgs",
            secrets = { w.lonely_secret } },
          { name = "cert-app", client_id = w.cert_app, certificates = { w.cert_pem } },
          { name = "workload", client_id = w.workload,
            federated_credentials = { { name = "k8s", issuer = w.issuer, subject = w.subject } } },
        },
        managed_identities = {
          { name = "vm1", type = "system_assigned", object_id = w.vm_oid },
          { name = "uami1", type = "user_assigned", client_id = w.uami_client, object_id = w.uami_oid,
            resource_id = w.uami_rid },
        },
        users = { { object_id = w.user, user_principal_name = "alice@" .. w.domain_a, name = "Alice" } },
        groups = {
          { name = "outer", object_id = w.group_outer, members = { w.group_inner, w.user } },
          { name = "inner", object_id = w.group_inner, members = { w.sp_server } },
        },
      },
      {
        id = w.tenant_b, domain = w.domain_b, name = "Fabrikam",
        service_principals = { { app_id = w.multi, object_id = w.sp_multi_b } },
      },
    },
    federated_issuers = { { issuer = w.issuer, public_key = w.issuer_key:toPEM("public") } },
  }
  return w
end

return fixtures
