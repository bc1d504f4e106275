-- The emulated Microsoft Entra directory, built from the config's `tenants` and
-- `federated_issuers` sections: tenants, app registrations, service principals
-- (enterprise apps), managed identities, users and groups with transitive membership.
local digest = require "openssl.digest"
local pkey = require "openssl.pkey"
local rand = require "openssl.rand"
local x509 = require "openssl.x509"
local cjson = require "cjson.safe"
local jwt = require "signalr.emulator.jwt"

local byte, format, concat = string.byte, string.format, table.concat

-- luacheck: ignore 212/self
local M = {}

M.TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"

local GUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

function M.is_guid(s)
  return type(s) == "string" and s:match(GUID) ~= nil
end

-- A stable GUID derived from text (name-based, SHA-1, version 5 layout), so ids that a
-- config leaves out stay the same across restarts.
function M.derived_guid(...)
  local h = digest.new("sha1"):final("signalr-emulator\0" .. concat({ ... }, "\0"))
  local b = { byte(h, 1, 16) }
  b[7] = (b[7] & 0x0f) | 0x50
  b[9] = (b[9] & 0x3f) | 0x80
  local hex = ("%02x"):rep(16):format(table.unpack(b))
  return format("%s-%s-%s-%s-%s", hex:sub(1, 8), hex:sub(9, 12), hex:sub(13, 16),
    hex:sub(17, 20), hex:sub(21, 32))
end

-- A random (version 4) GUID, as Entra and ARM mint for new objects and requests.
function M.random_guid()
  local b = { rand.bytes(16):byte(1, 16) }
  b[7] = (b[7] & 0x0f) | 0x40
  b[9] = (b[9] & 0x3f) | 0x80
  local hex = ("%02x"):rep(16):format(table.unpack(b))
  return format("%s-%s-%s-%s-%s", hex:sub(1, 8), hex:sub(9, 12), hex:sub(13, 16),
    hex:sub(17, 20), hex:sub(21, 32))
end

---------------------------------------------------------------------------------------
-- config validation helpers: every error names the field (never a secret's value)
---------------------------------------------------------------------------------------
local Invalid = {}

local function fail(path, msg)
  error(setmetatable({ msg = path .. ": " .. msg }, Invalid), 0)
end

local function opt_string(t, k, path)
  local v = t[k]
  if v ~= nil and (type(v) ~= "string" or v == "") then fail(path .. "." .. k, "must be a non-empty string") end
  return v
end

local function req_string(t, k, path)
  local v = opt_string(t, k, path)
  if v == nil then fail(path .. "." .. k, "is required") end
  return v
end

local function opt_guid(t, k, path)
  local v = t[k]
  if v == nil then return nil end
  if not M.is_guid(v) then fail(path .. "." .. k, "must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)") end
  return v:lower()
end

local function opt_list(t, k, path)
  local v = t[k]
  if v == nil then return {} end
  if type(v) ~= "table" or (next(v) ~= nil and v[1] == nil) then fail(path .. "." .. k, "must be a list") end
  return v
end

local function check_object(v, path)
  if type(v) ~= "table" or (next(v) ~= nil and v[1] ~= nil) then fail(path, "must be an object") end
  return v
end

local function read_file(path, base_dir, field)
  local full = path
  if base_dir and not path:match("^/") then full = base_dir .. "/" .. path end
  local f = io.open(full, "rb")
  if not f then fail(field, "cannot read file " .. full) end
  local s = f:read("a")
  f:close()
  return s
end

-- "2030-01-01T00:00:00Z" or epoch seconds -> epoch seconds.
local function parse_time(v, path)
  if type(v) == "number" then return v end
  if type(v) ~= "string" then fail(path, "must be epoch seconds or an RFC 3339 UTC time") end
  local y, mo, d, h, mi, s = v:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[T ](%d%d):(%d%d):(%d%d)%.?%d*Z$")
  if not y then
    y, mo, d = v:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
    h, mi, s = 0, 0, 0
  end
  if not y then fail(path, "must be epoch seconds or an RFC 3339 UTC time") end
  -- days from civil (proleptic Gregorian), UTC, no os.time/timezone involved
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local mp = (mo + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
end
M.parse_time = parse_time

---------------------------------------------------------------------------------------
-- keys from config: PEM public keys, certificates, JWKS
---------------------------------------------------------------------------------------
local function der_len(n)
  if n < 128 then return string.char(n) end
  local bytes = {}
  while n > 0 do table.insert(bytes, 1, string.char(n & 255)); n = n >> 8 end
  return string.char(0x80 | #bytes) .. concat(bytes)
end

local function der(tag, content) return string.char(tag) .. der_len(#content) .. content end

local function der_uint(bin)
  bin = bin:gsub("^%z+", "")
  if bin == "" then bin = "\0" end
  if byte(bin, 1) >= 0x80 then bin = "\0" .. bin end
  return der(0x02, bin)
end

-- RSA public key from JWK members n and e (base64url big-endian integers).
function M.rsa_public_key_from_jwk(jwk)
  if type(jwk) ~= "table" or jwk.kty ~= "RSA" then return nil, "not an RSA JWK" end
  local n, e = jwt.base64url_decode(jwk.n or ""), jwt.base64url_decode(jwk.e or "")
  if not n or not e or n == "" or e == "" then return nil, "JWK n/e are not base64url" end
  local rsa_oid = "\6\9\42\134\72\134\247\13\1\1\1"
  local spki = der(0x30, der(0x30, rsa_oid .. "\5\0") ..
    der(0x03, "\0" .. der(0x30, der_uint(n) .. der_uint(e))))
  local ok, key = pcall(pkey.new, spki, "DER")
  if not ok then return nil, "JWK is not a usable RSA key" end
  return key
end

-- { kty, use, kid, n, e } for an RSA key (public members only).
function M.jwk_from_rsa_key(key, kid)
  local p = key:getParameters()
  return { kty = "RSA", use = "sig", kid = kid, n = jwt.base64url_encode(p.n:toBinary()),
    e = jwt.base64url_encode(p.e:toBinary()) }
end

local function load_issuer_keys(spec, path, base_dir)
  local keys = {}
  local function add_pem(text, field)
    local key, err = jwt.rsa_key(text)
    if not key then fail(field, err) end
    keys[#keys + 1] = { key = key }
  end
  local function add_jwks(doc, field)
    if type(doc) ~= "table" or type(doc.keys) ~= "table" then fail(field, "must be a JWKS ({\"keys\": [...]})") end
    for i, jwk in ipairs(doc.keys) do
      local key, err = M.rsa_public_key_from_jwk(jwk)
      if not key then fail(field .. ".keys[" .. i .. "]", err) end
      keys[#keys + 1] = { key = key, kid = jwk.kid }
    end
  end
  if spec.public_key then add_pem(opt_string(spec, "public_key", path), path .. ".public_key") end
  if spec.public_key_file then
    add_pem(read_file(opt_string(spec, "public_key_file", path), base_dir, path .. ".public_key_file"),
      path .. ".public_key_file")
  end
  if spec.jwks then add_jwks(spec.jwks, path .. ".jwks") end
  if spec.jwks_file then
    local text = read_file(opt_string(spec, "jwks_file", path), base_dir, path .. ".jwks_file")
    add_jwks(cjson.decode(text), path .. ".jwks_file")
  end
  if #keys == 0 then fail(path, "needs public_key, public_key_file, jwks or jwks_file") end
  return keys
end

local function load_certificate(entry, path, base_dir)
  local text
  if type(entry) == "string" then
    text = entry:find("-----BEGIN", 1, true) and entry or read_file(entry, base_dir, path)
  else
    check_object(entry, path)
    if entry.pem then text = opt_string(entry, "pem", path)
    elseif entry.file then text = read_file(opt_string(entry, "file", path), base_dir, path .. ".file")
    else fail(path, "needs pem or file") end
  end
  local ok, cert = pcall(x509.new, text, "PEM")
  if not ok then fail(path, "is not a PEM certificate") end
  local key, err = jwt.rsa_key(cert)
  if not key then fail(path, err) end
  local tp = assert(jwt.thumbprints(cert))
  local not_before, not_after = cert:getLifetime()
  return { key = key, sha1_hex = tp.sha1_hex, x5t = tp.x5t, x5t_s256 = tp["x5t#S256"],
    not_before = not_before, not_after = not_after }
end

local function load_secret(entry, path)
  local value, expires
  if type(entry) == "string" then
    value = entry
  else
    check_object(entry, path)
    value = entry.value
    if entry.expires ~= nil then expires = parse_time(entry.expires, path .. ".expires") end
  end
  if type(value) ~= "string" or value == "" then fail(path, "needs a non-empty secret value") end
  -- Only a digest is kept: the directory never holds a client secret in clear.
  return { digest = digest.new("sha256"):final(value), expires = expires, hint = value:sub(1, 3) }
end

---------------------------------------------------------------------------------------
-- building the directory
---------------------------------------------------------------------------------------
local Directory = {}
Directory.__index = Directory

local function register_object(self, obj, path)
  local existing = self.objects[obj.object_id]
  if existing then
    fail(path .. ".object_id", "duplicates the object id of " .. existing.path)
  end
  obj.path = path
  self.objects[obj.object_id] = obj
  obj.tenant.objects[obj.object_id] = obj
end

local function build_app(self, tenant, spec, path)
  check_object(spec, path)
  local name = opt_string(spec, "name", path)
  local client_id = opt_guid(spec, "client_id", path)
  if not client_id then fail(path .. ".client_id", "is required") end
  if self.client_ids[client_id] then
    fail(path .. ".client_id", "duplicates the client id of " .. self.client_ids[client_id].path)
  end
  local audience = spec.sign_in_audience or "AzureADMyOrg"
  local multi
  if audience == "AzureADMyOrg" or audience == "single" then multi = false
  elseif audience == "AzureADMultipleOrgs" or audience == "multi" then multi = true
  else fail(path .. ".sign_in_audience", "must be AzureADMyOrg (single) or AzureADMultipleOrgs (multi)") end
  local app = {
    kind = "application", tenant = tenant, name = name or client_id, client_id = client_id,
    object_id = opt_guid(spec, "object_id", path) or M.derived_guid("app", client_id),
    multi_tenant = multi, secrets = {}, certificates = {}, federated_credentials = {},
  }
  for i, s in ipairs(opt_list(spec, "secrets", path)) do
    app.secrets[i] = load_secret(s, path .. ".secrets[" .. i .. "]")
  end
  for i, c in ipairs(opt_list(spec, "certificates", path)) do
    app.certificates[i] = load_certificate(c, path .. ".certificates[" .. i .. "]", self.base_dir)
  end
  for i, f in ipairs(opt_list(spec, "federated_credentials", path)) do
    local fpath = path .. ".federated_credentials[" .. i .. "]"
    check_object(f, fpath)
    local auds = f.audiences or { M.TOKEN_EXCHANGE_AUDIENCE }
    if type(auds) ~= "table" or #auds == 0 then fail(fpath .. ".audiences", "must be a non-empty list") end
    for j, a in ipairs(auds) do
      if type(a) ~= "string" or a == "" then fail(fpath .. ".audiences[" .. j .. "]", "must be a string") end
    end
    app.federated_credentials[i] = { name = opt_string(f, "name", fpath) or ("credential-" .. i),
      issuer = req_string(f, "issuer", fpath), subject = req_string(f, "subject", fpath), audiences = auds }
  end
  self.client_ids[client_id] = app
  app.path = path
  self.apps[client_id] = app
  -- The app's home tenant holds its service principal unless the config says otherwise.
  if spec.service_principal ~= false then
    local sp_spec = type(spec.service_principal) == "table" and spec.service_principal or {}
    local sp = { kind = "service_principal", tenant = tenant, app = app, app_id = client_id,
      name = app.name,
      object_id = opt_guid(sp_spec, "object_id", path .. ".service_principal")
        or M.derived_guid("sp", tenant.id, client_id) }
    register_object(self, sp, path .. ".service_principal")
    tenant.service_principals[client_id] = sp
  end
  return app
end

local function build_identity(self, tenant, spec, path)
  check_object(spec, path)
  local kind = spec.type or "user_assigned"
  if kind == "system" or kind == "SystemAssigned" or kind == "system_assigned" then kind = "system_assigned"
  elseif kind == "user" or kind == "UserAssigned" or kind == "user_assigned" then kind = "user_assigned"
  else fail(path .. ".type", "must be system_assigned or user_assigned") end
  local name = opt_string(spec, "name", path) or ("identity-" .. #tenant.managed_identities + 1)
  local client_id = opt_guid(spec, "client_id", path) or M.derived_guid("mi-client", tenant.id, name)
  if self.client_ids[client_id] then
    fail(path .. ".client_id", "duplicates the client id of " .. self.client_ids[client_id].path)
  end
  local default_rid = kind == "user_assigned"
    and ("/subscriptions/%s/resourcegroups/emulator/providers/Microsoft.ManagedIdentity/userAssignedIdentities/%s")
    or "/subscriptions/%s/resourcegroups/emulator/providers/Microsoft.Compute/virtualMachines/%s"
  local mi = {
    kind = "managed_identity", identity_type = kind, tenant = tenant, name = name, client_id = client_id,
    app_id = client_id,
    object_id = opt_guid(spec, "object_id", path) or M.derived_guid("mi", tenant.id, name),
    resource_id = opt_string(spec, "resource_id", path)
      or default_rid:format(M.derived_guid("subscription", tenant.id), name),
  }
  if not mi.resource_id:match("^/subscriptions/") then
    fail(path .. ".resource_id", "must be an Azure resource id (/subscriptions/...)")
  end
  self.client_ids[client_id] = mi
  register_object(self, mi, path)
  tenant.managed_identities[#tenant.managed_identities + 1] = mi
  if spec.default or (kind == "system_assigned" and not self.system_identity) then
    if spec.default and self.system_identity and self.system_identity.explicit then
      fail(path .. ".default", "only one managed identity can be the default")
    end
    self.system_identity = mi
    mi.explicit = spec.default and true or nil
  end
  return mi
end

local function build_tenant(self, spec, path)
  check_object(spec, path)
  local id = opt_guid(spec, "id", path)
  if not id then fail(path .. ".id", "is required") end
  if self.tenants[id] then fail(path .. ".id", "duplicates " .. self.tenants[id].path) end
  local domains = {}
  if spec.domain then domains[1] = req_string(spec, "domain", path) end
  for i, d in ipairs(opt_list(spec, "domains", path)) do
    if type(d) ~= "string" or d == "" then fail(path .. ".domains[" .. i .. "]", "must be a string") end
    domains[#domains + 1] = d
  end
  for i, d in ipairs(domains) do
    d = d:lower()
    domains[i] = d
    if not d:match("^[%w][%w%-%.]*%.[%a]+$") then fail(path .. ".domain", "is not a domain name: " .. d) end
    if self.domains[d] then fail(path .. ".domain", d .. " is already the domain of " .. self.domains[d].path) end
  end
  local tenant = { id = id, path = path, name = opt_string(spec, "name", path) or domains[1] or id,
    domains = domains, objects = {}, service_principals = {}, managed_identities = {},
    groups = {} }
  self.tenants[id] = tenant
  self.tenant_list[#self.tenant_list + 1] = tenant
  for _, d in ipairs(domains) do self.domains[d] = tenant end
  return tenant
end

local function build_users_and_groups(self, tenant, spec, path)
  for i, u in ipairs(opt_list(spec, "users", path)) do
    local upath = path .. ".users[" .. i .. "]"
    check_object(u, upath)
    local upn = opt_string(u, "user_principal_name", upath)
    local user = { kind = "user", tenant = tenant,
      object_id = opt_guid(u, "object_id", upath) or M.derived_guid("user", tenant.id, upn or tostring(i)),
      name = opt_string(u, "name", upath) or upn or ("user-" .. i), user_principal_name = upn }
    register_object(self, user, upath)
  end
  for i, g in ipairs(opt_list(spec, "groups", path)) do
    local gpath = path .. ".groups[" .. i .. "]"
    check_object(g, gpath)
    local name = opt_string(g, "name", gpath) or ("group-" .. i)
    local group = { kind = "group", tenant = tenant, name = name, members = {},
      object_id = opt_guid(g, "object_id", gpath) or M.derived_guid("group", tenant.id, name) }
    register_object(self, group, gpath)
    tenant.groups[#tenant.groups + 1] = group
    group.member_specs = opt_list(g, "members", gpath)
  end
end

local function resolve_members(self, tenant)
  for _, group in ipairs(tenant.groups) do
    for j, m in ipairs(group.member_specs) do
      local mpath = group.path .. ".members[" .. j .. "]"
      if not M.is_guid(m) then fail(mpath, "must be the object id of a user, group or principal") end
      local member = tenant.objects[m:lower()]
      if not member then fail(mpath, "no object " .. m .. " in tenant " .. tenant.id) end
      group.members[#group.members + 1] = member
    end
    group.member_specs = nil
  end
  -- Transitive membership: for each object, every group that contains it directly or
  -- through nested groups (cycles are harmless).
  local direct = {}
  for _, group in ipairs(tenant.groups) do
    for _, m in ipairs(group.members) do
      direct[m.object_id] = direct[m.object_id] or {}
      table.insert(direct[m.object_id], group)
    end
  end
  for oid, obj in pairs(tenant.objects) do
    local seen, list, queue = {}, {}, { oid }
    while #queue > 0 do
      local cur = table.remove(queue)
      for _, g in ipairs(direct[cur] or {}) do
        if not seen[g.object_id] then
          seen[g.object_id] = true
          list[#list + 1] = g.object_id
          queue[#queue + 1] = g.object_id
        end
      end
    end
    table.sort(list)
    obj.group_ids = list
  end
end

local function build_enterprise_apps(self, tenant, spec, path)
  for i, s in ipairs(opt_list(spec, "service_principals", path)) do
    local spath = path .. ".service_principals[" .. i .. "]"
    check_object(s, spath)
    local app_id = opt_guid(s, "app_id", spath)
    if not app_id then fail(spath .. ".app_id", "is required (the client id of an app registration)") end
    local app = self.apps[app_id]
    if not app then fail(spath .. ".app_id", "no app registration has client id " .. app_id) end
    if app.tenant ~= tenant and not app.multi_tenant then
      fail(spath .. ".app_id", "app " .. app_id .. " is single-tenant (AzureADMyOrg); only its home tenant "
        .. app.tenant.id .. " can hold its service principal")
    end
    if tenant.service_principals[app_id] then
      fail(spath .. ".app_id", "tenant already has a service principal for " .. app_id)
    end
    local sp = { kind = "service_principal", tenant = tenant, app = app, app_id = app_id,
      name = opt_string(s, "name", spath) or app.name,
      object_id = opt_guid(s, "object_id", spath) or M.derived_guid("sp", tenant.id, app_id) }
    register_object(self, sp, spath)
    tenant.service_principals[app_id] = sp
  end
end

-- Validates and builds. config.base_dir (optional) resolves relative file paths.
-- Returns the directory or nil, "field.path: reason".
function M.new(config)
  config = config or {}
  local self = setmetatable({ tenants = {}, tenant_list = {}, domains = {}, apps = {}, client_ids = {},
    objects = {}, issuers = {}, base_dir = config.base_dir }, Directory)
  local ok, err = pcall(function()
    local tenants = opt_list(config, "tenants", "config")
    for i, t in ipairs(tenants) do build_tenant(self, t, "tenants[" .. i .. "]") end
    -- apps first (in every tenant), so enterprise apps can refer to apps of any tenant
    for i, t in ipairs(tenants) do
      local tenant = self.tenant_list[i]
      for j, a in ipairs(opt_list(t, "apps", "tenants[" .. i .. "]")) do
        build_app(self, tenant, a, "tenants[" .. i .. "].apps[" .. j .. "]")
      end
    end
    for i, t in ipairs(tenants) do
      local tenant, path = self.tenant_list[i], "tenants[" .. i .. "]"
      build_enterprise_apps(self, tenant, t, path)
      for j, m in ipairs(opt_list(t, "managed_identities", path)) do
        build_identity(self, tenant, m, path .. ".managed_identities[" .. j .. "]")
      end
      build_users_and_groups(self, tenant, t, path)
    end
    for _, tenant in ipairs(self.tenant_list) do resolve_members(self, tenant) end
    for i, spec in ipairs(opt_list(config, "federated_issuers", "config")) do
      local path = "federated_issuers[" .. i .. "]"
      check_object(spec, path)
      local iss = req_string(spec, "issuer", path)
      if self.issuers[iss] then fail(path .. ".issuer", "duplicates another issuer") end
      self.issuers[iss] = { issuer = iss, keys = load_issuer_keys(spec, path, self.base_dir) }
    end
  end)
  if not ok then
    if getmetatable(err) == Invalid then return nil, err.msg end
    error(err, 0)
  end
  return self
end

function M.validate(config)
  local dir, err = M.new(config)
  if not dir then return nil, err end
  return true
end

---------------------------------------------------------------------------------------
-- queries
---------------------------------------------------------------------------------------

-- Tenant by id (GUID, any case) or by one of its domain names.
function Directory:tenant(id_or_domain)
  if type(id_or_domain) ~= "string" then return nil end
  local key = id_or_domain:lower()
  return self.tenants[key] or self.domains[key]
end

function Directory:tenants_list()
  return self.tenant_list
end

-- App registration by client id (apps are global; their home tenant is app.tenant).
function Directory:application(client_id)
  return type(client_id) == "string" and self.apps[client_id:lower()] or nil
end

-- The service principal of app `client_id` in `tenant` (a tenant table), or nil.
function Directory:service_principal(tenant, client_id)
  return type(client_id) == "string" and tenant.service_principals[client_id:lower()] or nil
end

-- Any directory object (service principal, managed identity, user, group) in one tenant.
function Directory:object(tenant_id, object_id)
  local tenant = self:tenant(tenant_id)
  if not tenant or type(object_id) ~= "string" then return nil end
  return tenant.objects[object_id:lower()]
end

-- Any directory object by object id, whatever its tenant.
function Directory:object_anywhere(object_id)
  return type(object_id) == "string" and self.objects[object_id:lower()] or nil
end

-- The managed identity a request selects: by client_id, object_id or resource_id (at
-- most one), or the system-assigned (default) identity when none is given.
function Directory:managed_identity(selector)
  selector = selector or {}
  if selector.client_id then
    local mi = self.client_ids[selector.client_id:lower()]
    return mi and mi.kind == "managed_identity" and mi or nil
  elseif selector.object_id then
    local mi = self.objects[selector.object_id:lower()]
    return mi and mi.kind == "managed_identity" and mi or nil
  elseif selector.resource_id then
    local want = selector.resource_id:lower()
    for _, tenant in ipairs(self.tenant_list) do
      for _, mi in ipairs(tenant.managed_identities) do
        if mi.resource_id:lower() == want then return mi end
      end
    end
    return nil
  end
  return self.system_identity
end

-- "valid" | "expired" | "invalid" for a presented client secret.
function Directory:check_secret(app, presented, now)
  if type(presented) ~= "string" then return "invalid" end
  local d = digest.new("sha256"):final(presented)
  local result = "invalid"
  for _, s in ipairs(app.secrets) do
    if jwt.constant_time_equal(s.digest, d) then
      if s.expires and now >= s.expires then
        if result == "invalid" then result = "expired" end
      else
        result = "valid"
      end
    end
  end
  return result
end

-- The app's registered certificate whose thumbprint the assertion header names.
function Directory:certificate(app, header)
  for _, c in ipairs(app.certificates) do
    if (header["x5t#S256"] and header["x5t#S256"] == c.x5t_s256)
      or (header.x5t and header.x5t == c.x5t) then
      return c
    end
  end
  return nil
end

function Directory:federated_issuer(iss)
  return type(iss) == "string" and self.issuers[iss] or nil
end

-- The principal table other parts use (INTERNALS.md): plain data, no back references.
function Directory:principal(obj)
  local groups = {}
  for i, g in ipairs(obj.group_ids or {}) do groups[i] = g end
  return {
    tenant_id = obj.tenant.id,
    object_id = obj.object_id,
    kind = obj.kind,
    app_id = obj.app_id,
    group_ids = groups,
    name = obj.name,
    resource_id = obj.resource_id,
  }
end

return M
