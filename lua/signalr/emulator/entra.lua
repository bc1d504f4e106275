-- Microsoft Entra ID for the emulator: the v2.0 token endpoint (client secret, certificate
-- assertion, federated assertion), per-tenant signing keys (JWKS), OpenID metadata,
-- tokens for any principal (admin API) and validation of the tokens it issued.
-- Errors follow Entra's shape and AADSTS codes; none ever contains a secret or token.
local cjson = require "cjson.safe"
local pkey = require "openssl.pkey"
local rand = require "openssl.rand"
local x509 = require "openssl.x509"
local xname = require "openssl.x509.name"
local bignum = require "openssl.bignum"
local jwt = require "signalr.emulator.jwt"
local directory = require "signalr.emulator.directory"

local format, concat = string.format, table.concat

local M = {}

M.RESOURCE = "https://signalr.azure.com"
M.SCOPE = M.RESOURCE .. "/.default"
M.ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
-- Longest form body the token endpoint reads (a client assertion with an x5c chain fits).
M.MAX_FORM_BYTES = 64 * 1024
-- Tolerance for a client's clock running ahead (nbf); expiry itself is strict.
M.ASSERTION_NBF_SKEW = 300

local CERT_DOCS = "Review the documentation at "
    .. "https://learn.microsoft.com/entra/identity-platform/certificate-credentials ."
local WORKLOAD_DOCS = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation"

---------------------------------------------------------------------------------------
-- small helpers
---------------------------------------------------------------------------------------
local uuid = directory.random_guid
M.uuid = uuid

-- Times as Entra prints them; a value no calendar can show (from a hostile assertion)
-- is printed as the number it is.
local function utc(t, iso)
  if type(t) ~= "number" or t ~= t or t < 0 or t > 253402300799 then return tostring(t) end
  return os.date(iso and "!%Y-%m-%dT%H:%M:%S.0000000Z" or "!%Y-%m-%d %H:%M:%SZ", math.floor(t))
end

local function percent_decode(s)
  return (s:gsub("%+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- application/x-www-form-urlencoded -> { name = value } | nil, reason (duplicates refused)
local function parse_form(body)
  local form = {}
  if body == nil or body == "" then return form end
  for pair in body:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k, v = percent_decode(k), percent_decode(v)
    if form[k] ~= nil then return nil, k end
    form[k] = v
  end
  return form
end
M.parse_form = parse_form

local function b64_std_decode(s)
  s = s:gsub("%s", ""):gsub("=+$", ""):gsub("%+", "-"):gsub("/", "_")
  return jwt.base64url_decode(s)
end

local function b64_std_encode(s)
  local u = jwt.base64url_encode(s):gsub("%-", "+"):gsub("_", "/")
  return u .. string.rep("=", (4 - #u % 4) % 4)
end

local function json(status, value, headers)
  local h = headers or {}
  h["content-type"] = "application/json; charset=utf-8"
  h["cache-control"] = "no-store, no-cache"
  h["pragma"] = "no-cache"
  return { status = status, headers = h, body = assert(cjson.encode(value)) }
end

-- Shown in messages: identifiers only, cut at 128 bytes, non-printable bytes replaced.
local function shown(v)
  if type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do
      if i > 4 then break end
      parts[i] = type(x) == "table" and "[...]" or tostring(x)
    end
    v = concat(parts, ",")
  end
  v = tostring(v or ""):gsub("[^\32-\126]", "?")
  if #v > 128 then v = v:sub(1, 128) .. "..." end
  return v
end

local Idp = {}
Idp.__index = Idp

---------------------------------------------------------------------------------------
-- Entra-shaped errors
---------------------------------------------------------------------------------------
local ERRORS = {
  [900144] = { 400, "invalid_request" },  -- missing parameter
  [900561] = { 400, "invalid_request" },  -- wrong HTTP method
  [90023] = { 400, "invalid_request" },   -- malformed request
  [90002] = { 400, "invalid_request" },   -- tenant not found
  [900023] = { 400, "invalid_request" },  -- tenant identifier not a GUID or DNS name
  [9001023] = { 400, "invalid_request" }, -- grant type over /common or /consumers
  [50059] = { 400, "invalid_request" },   -- no tenant-identifying information
  [70003] = { 400, "unsupported_grant_type" },
  [70011] = { 400, "invalid_scope" },
  [1002012] = { 400, "invalid_scope" },
  [500011] = { 400, "invalid_resource" },
  [700016] = { 400, "unauthorized_client" },
  [7000218] = { 401, "invalid_client" },  -- neither secret nor assertion
  [7000215] = { 401, "invalid_client" },  -- bad secret
  [7000222] = { 401, "invalid_client" },  -- expired secret
  [50027] = { 400, "invalid_request" },   -- invalid or malformed JWT
  [5002741] = { 401, "invalid_client" },  -- too many audiences
  [50012] = { 401, "invalid_client" },    -- assertion audience does not match
  [50048] = { 401, "invalid_client" },    -- assertion sub != iss
  [700021] = { 401, "invalid_client" },   -- assertion app id != client_id
  [700024] = { 401, "invalid_client" },   -- assertion outside its time range
  [700027] = { 401, "invalid_client" },   -- signature / certificate not registered
  [70021] = { 400, "invalid_request" },   -- no matching federated identity record
  [50166] = { 400, "invalid_request" },   -- federated issuer keys unavailable
}

function Idp:error_response(req, code, message)
  local spec = ERRORS[code] or { 400, "invalid_request" }
  local now = self.clock:now()
  local trace = uuid()
  local correlation = req and req.headers and req.headers["client-request-id"]
  if not directory.is_guid(correlation) then correlation = uuid() end
  local ts = utc(now)
  local desc = format("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
    code, message, trace, correlation, ts)
  return json(spec[1], {
    error = spec[2], error_description = desc, error_codes = { code }, timestamp = ts,
    trace_id = trace, correlation_id = correlation,
    error_uri = self.authority .. "/error?code=" .. code,
  }, { ["x-ms-request-id"] = trace, ["client-request-id"] = correlation })
end

---------------------------------------------------------------------------------------
-- construction and signing keys
---------------------------------------------------------------------------------------
-- opts: directory, clock, settings (token_lifetime, refresh_in), authority
-- ("https://localhost:8443", no trailing slash), state_dir (optional: keys persist there).
function M.new(opts)
  assert(opts.directory and opts.clock and opts.authority, "entra.new: directory, clock, authority required")
  return setmetatable({
    dir = opts.directory, clock = opts.clock, settings = opts.settings or {},
    authority = opts.authority:gsub("/+$", ""), state_dir = opts.state_dir,
    keys = {}, replay = {}, replay_count = 0,
  }, Idp)
end

local function self_signed(key, cn)
  local crt = x509.new()
  crt:setVersion(3)
  crt:setSerial(bignum.fromBinary(rand.bytes(8)))
  local name = xname.new()
  name:add("CN", cn)
  crt:setSubject(name)
  crt:setIssuer(name)
  crt:setPublicKey(key)
  local now = os.time()
  crt:setLifetime(now - 86400, now + 5 * 365 * 86400)
  crt:sign(key)
  return crt
end

local function load_or_create_key(state_dir, tenant_id)
  local statedir = require "signalr.emulator.statedir"
  local base = state_dir and (state_dir .. "/entra")
  local key_path, cert_path = base and (base .. "/" .. tenant_id .. ".key.pem"),
    base and (base .. "/" .. tenant_id .. ".cert.pem")
  if base and statedir.exists(key_path) and statedir.exists(cert_path) then
    local ok, key = pcall(pkey.new, assert(statedir.read(key_path)), "PEM")
    local ok2, crt = pcall(x509.new, assert(statedir.read(cert_path)), "PEM")
    if ok and ok2 then return key, crt end
  end
  local key = pkey.new { type = "RSA", bits = 2048 }
  local crt = self_signed(key, "signalr-emulator entra " .. tenant_id)
  if base then
    assert(statedir.mkdir_p(base))
    assert(statedir.write(key_path, key:toPEM("private"), true))
    assert(statedir.write(cert_path, crt:toPEM(), false))
  end
  return key, crt
end

-- The tenant's signing key, created on first use (RSA 2048) and cached in the state dir.
function Idp:signing_key(tenant)
  local entry = self.keys[tenant.id]
  if entry then return entry end
  local key, crt = load_or_create_key(self.state_dir, tenant.id)
  local tp = assert(jwt.thumbprints(crt))
  entry = { key = key, cert = crt, kid = tp.x5t, x5t = tp.x5t, der = tp.der }
  self.keys[tenant.id] = entry
  return entry
end

function Idp:issuer(tenant_id)
  return self.authority .. "/" .. tenant_id .. "/v2.0"
end

function Idp:token_endpoint(tenant_segment)
  return self.authority .. "/" .. tenant_segment .. "/oauth2/v2.0/token"
end

---------------------------------------------------------------------------------------
-- tokens
---------------------------------------------------------------------------------------
local function lifetime(self, opts)
  local l = (opts and opts.lifetime) or self.settings.token_lifetime or 3600
  return math.max(1, math.floor(l))
end

-- obj: a directory object (service principal, managed identity or user) of `tenant`.
function Idp:mint(tenant, obj, opts)
  opts = opts or {}
  local now = math.floor(self.clock:now())
  local life = lifetime(self, opts)
  local sk = self:signing_key(tenant)
  local claims = {
    aud = opts.audience or M.RESOURCE, iss = self:issuer(tenant.id), iat = now, nbf = now, exp = now + life,
    tid = tenant.id, oid = obj.object_id, sub = obj.object_id, ver = "2.0",
    uti = jwt.base64url_encode(rand.bytes(16)),
  }
  if obj.kind == "user" then
    claims.idtyp = "user"
    claims.name = obj.name
    claims.preferred_username = obj.user_principal_name
    claims.scp = "user_impersonation"
    claims.azp = opts.client_id
  else
    claims.idtyp = "app"
    claims.appid = obj.app_id
    claims.azp = obj.app_id
    claims.azpacr = opts.azpacr or "1"
    claims.appidacr = claims.azpacr
    if obj.kind == "managed_identity" then claims.xms_mirid = obj.resource_id end
  end
  if obj.group_ids and #obj.group_ids > 0 then claims.groups = obj.group_ids end
  local token = jwt.encode({ typ = "JWT", alg = "RS256", kid = sk.kid, x5t = sk.x5t }, claims, sk.key)
  return token, life, claims
end

-- For the admin API: an Entra token for any principal (users included) of a tenant.
-- principal: an object id, or a table with object_id. Returns token | nil, err.
function Idp:issue_token(tenant_id, principal, opts)
  local tenant = self.dir:tenant(tenant_id)
  if not tenant then return nil, "unknown tenant " .. shown(tenant_id) end
  local oid = type(principal) == "table" and principal.object_id or principal
  local obj = self.dir:object(tenant.id, oid)
  if not obj then return nil, "no principal " .. shown(oid) .. " in tenant " .. tenant.id end
  if obj.kind == "group" then return nil, "a group cannot hold a token" end
  return (self:mint(tenant, obj, opts))
end

local function audience_ok(aud)
  if type(aud) == "table" then
    for _, a in ipairs(aud) do if audience_ok(a) then return true end end
    return false
  end
  return aud == M.RESOURCE or aud == M.RESOURCE .. "/"
end

-- Validates a token this emulator issued, for a resource of tenant `tenant_id`.
-- Returns the principal table (INTERNALS.md) or nil, reason, kind where kind is one of
-- malformed, signature, expired, not_yet_valid, audience, issuer, tenant, principal.
function Idp:validate(token, tenant_id)
  local t, err = jwt.decode(token)
  if not t then return nil, err, "malformed" end
  local tid = t.claims.tid
  local issuing = type(tid) == "string" and self.dir:tenant(tid)
  if not issuing or issuing.id ~= tid:lower() then
    return nil, "token names no tenant this emulator knows (tid)", "tenant"
  end
  local now = self.clock:now()
  local header, claims, kind = jwt.verify(token, { algs = { "RS256" }, now = now, require_exp = true,
    key = function(h)
      local sk = self:signing_key(issuing)
      if h.kid ~= sk.kid then return nil, "bad signature (unknown signing key id)" end
      return sk.key
    end })
  if not header then
    -- on failure verify returns nil, reason, kind
    return nil, claims, kind == "key" and "signature" or kind
  end
  if claims.iss ~= self:issuer(issuing.id) then
    return nil, "wrong issuer: expected the issuer of tenant " .. issuing.id, "issuer"
  end
  if not audience_ok(claims.aud) then
    return nil, "wrong audience: expected " .. M.RESOURCE, "audience"
  end
  local resource_tenant = self.dir:tenant(tenant_id)
  if not resource_tenant or resource_tenant.id ~= issuing.id then
    return nil, format("wrong tenant: token issued by tenant %s, resource belongs to tenant %s",
      issuing.id, shown(tenant_id)), "tenant"
  end
  local obj = self.dir:object(issuing.id, claims.oid)
  if not obj or obj.kind == "group" then
    return nil, "unknown principal: no object " .. shown(claims.oid) .. " in tenant " .. issuing.id, "principal"
  end
  return self.dir:principal(obj)
end

---------------------------------------------------------------------------------------
-- the token endpoint
---------------------------------------------------------------------------------------
local SPECIAL_TENANTS = { common = true, consumers = true, organizations = true }

-- Resolves the {tenant} path segment: tenant | nil, error response.
function Idp:resolve_tenant(req, segment)
  local lower = (segment or ""):lower()
  if lower == "common" or lower == "consumers" then
    return nil, self:error_response(req, 9001023,
      "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or "
          .. "tenant-specific endpoint.")
  elseif lower == "organizations" then
    return nil, self:error_response(req, 50059,
      "No tenant-identifying information found in either the request or implied by any provided credentials. Client "
          .. "credential flows need a tenant-specific endpoint.")
  end
  local tenant = self.dir:tenant(segment)
  if tenant then return tenant end
  if not directory.is_guid(segment) and not lower:match("^[%w][%w%-%.]*%.[%a][%a]+$") then
    return nil, self:error_response(req, 900023, format(
      "Specified tenant identifier '%s' is neither a valid DNS name, nor a valid external domain.", shown(segment)))
  end
  return nil, self:error_response(req, 90002, format(
    "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. "
        .. "Check with your subscription administrator, this may happen if there are no active subscriptions for "
        .. "the tenant.",
    shown(segment)))
end

-- Checks the scope parameter; returns the token audience (Entra's rule: everything
-- before the last "/") or nil, an error response.
function Idp:check_scope(req, tenant, scope)
  local scopes = {}
  for s in scope:gmatch("%S+") do scopes[#scopes + 1] = s end
  if #scopes == 0 then
    return nil, self:error_response(req, 900144, "The request body must contain the following parameter: 'scope'.")
  end
  if #scopes > 1 then
    return nil, self:error_response(req, 70011, format(
      "The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.",
      shown(scope)))
  end
  local s = scopes[1]
  local resource, name = s:match("^(.-)/([^/]*)$")
  if not resource or resource == "" or not (resource:match("^%a[%w+.-]*://") or directory.is_guid(resource)
      or resource:match("^api://")) then
    return nil, self:error_response(req, 70011, format(
      "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' "
          .. "is not valid. The scope %s is not valid. The scope format is invalid. Scope must be in a valid URI "
          .. "form <https://example/scope> or a valid Guid <guid/scope>.",
      shown(s)))
  end
  if name ~= ".default" then
    return nil, self:error_response(req, 1002012, format(
      "The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default "
          .. "suffixed to the resource identifier (application ID URI).",
      shown(s)))
  end
  -- "https://signalr.azure.com//.default" names the same resource with a trailing slash
  -- (the token's aud keeps the slash, as Entra's does).
  if resource ~= M.RESOURCE and resource ~= M.RESOURCE .. "/" then
    return nil, self:error_response(req, 500011, format(
      "The resource principal named %s was not found in the tenant named %s. "
        .. "This can happen if the application has not "
          .. "been installed by the administrator of the tenant or consented to by any user in the tenant. You "
          .. "might have sent your authentication request to the wrong tenant.",
      shown(resource), tenant.name))
  end
  return resource
end

function Idp:app_not_found(req, tenant, client_id)
  return self:error_response(req, 700016, format(
    "Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not "
        .. "been installed by the administrator of the tenant or consented to by any user in the tenant. You may "
        .. "have sent your authentication request to the wrong tenant.",
    shown(client_id), tenant.name))
end

-- Records a jti until the assertion expires; returns false when it was already used.
function Idp:remember_jti(client_id, jti, exp)
  local now = self.clock:now()
  if self.replay_count > 10000 then
    local kept, n = {}, 0
    for k, e in pairs(self.replay) do if e > now then kept[k] = e; n = n + 1 end end
    self.replay, self.replay_count = kept, n
  end
  local key = client_id .. "\0" .. jti
  local seen = self.replay[key]
  if seen and seen > now then return false end
  self.replay[key] = exp
  self.replay_count = self.replay_count + 1
  return true
end

local function one_audience(aud)
  if type(aud) == "table" then
    if #aud ~= 1 then return nil, #aud end
    aud = aud[1]
  end
  if type(aud) ~= "string" then return nil, 0 end
  return aud
end

-- The audiences Entra accepts in a client assertion: the token endpoint (v2 or v1) of this
-- tenant by id or any of its domains, or the tenant's v2 issuer.
function Idp:assertion_audience_ok(tenant, aud)
  local a = aud:lower():gsub("/+$", "")
  local base = self.authority:lower()
  if a == self:issuer(tenant.id):lower() then return true end
  local names = { tenant.id }
  for _, d in ipairs(tenant.domains) do names[#names + 1] = d end
  for _, n in ipairs(names) do
    if a == base .. "/" .. n .. "/oauth2/v2.0/token" or a == base .. "/" .. n .. "/oauth2/token" then
      return true
    end
  end
  return false
end

local function time_range_message(now, claims)
  return format("Client assertion is not within its valid time range. "
    .. "Current time: %s, assertion valid from %s, expiry "
      .. "time of assertion %s. %s",
    utc(now, true), utc(type(claims.nbf) == "number" and claims.nbf or 0, true),
    utc(type(claims.exp) == "number" and claims.exp or 0, true), CERT_DOCS)
end

-- Certificate client assertion (private_key_jwt): iss = sub = client id.
function Idp:certificate_assertion(req, tenant, t, client_id)
  local h, c = t.header, t.claims
  local app = self.dir:application(client_id)
  local sp = app and self.dir:service_principal(tenant, client_id)
  if not sp then return nil, self:app_not_found(req, tenant, client_id) end
  if h.alg ~= "RS256" and h.alg ~= "PS256" then
    return nil, self:error_response(req, 50027, format(
      "JWT token is invalid or malformed: alg '%s' is not supported for client assertions (use RS256 or PS256).",
      shown(h.alg)))
  end
  local cert = self.dir:certificate(app, h)
  local thumb = h.x5t and shown(h.x5t) or (h["x5t#S256"] and shown(h["x5t#S256"])) or "none"
  if not cert then
    return nil, self:error_response(req, 700027, format(
      "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - "
          .. "The key was not found., Thumbprint of key used by client: '%s', Please visit the Azure Portal, Graph "
          .. "Explorer or directly use MS Graph to see configured keys for app Id '%s'.]",
      thumb, client_id))
  end
  local now = self.clock:now()
  local found = format("Found key 'Start=%s, End=%s'", utc(cert.not_before or 0, true), utc(cert.not_after or 0, true))
  if not jwt.verify(t.token, { algs = { h.alg }, key = cert.key }) then
    return nil, self:error_response(req, 700027, format(
      "Client assertion contains an invalid signature. [Reason - The provided signature value did not match the "
          .. "expected signature value., Thumbprint of key used by client: '%s', %s]",
      cert.sha1_hex, found))
  end
  if cert.not_after and now >= cert.not_after or cert.not_before and now < cert.not_before then
    return nil, self:error_response(req, 700027, format(
      "Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by "
          .. "client: '%s', %s]",
      cert.sha1_hex, found))
  end
  local aud, count = one_audience(c.aud)
  if not aud and count > 1 then
    return nil, self:error_response(req, 5002741, format(
      "Number of audience values in the provided client credential exceed maximum allowed. "
        .. "%d audience values provided, "
          .. "maximum allowed is 1.", count))
  end
  if not aud or not self:assertion_audience_ok(tenant, aud) then
    return nil, self:error_response(req, 50012, format(
      "Client assertion audience claim does not match Realm issuer. The audience must be the token endpoint %s. %s",
      self:token_endpoint(tenant.id), CERT_DOCS))
  end
  if type(c.exp) ~= "number" then
    return nil, self:error_response(req, 50027, "JWT token is invalid or malformed: the client assertion has no exp "
        .. "claim.")
  end
  if now >= c.exp or (type(c.nbf) == "number" and now + M.ASSERTION_NBF_SKEW < c.nbf) then
    return nil, self:error_response(req, 700024, time_range_message(now, c))
  end
  if type(c.jti) ~= "string" or c.jti == "" then
    return nil, self:error_response(req, 50027, "JWT token is invalid or malformed: the client assertion has no jti "
        .. "claim.")
  end
  if not self:remember_jti(client_id, c.jti, c.exp) then
    return nil, self:error_response(req, 50027,
      "JWT token is invalid or malformed: this client assertion was already used (its jti was replayed). Create a new "
          .. "assertion for every request.")
  end
  return sp, "2"
end

-- Federated assertion (workload identity): a JWT from a trusted external issuer matching
-- one of the app's federated identity credentials.
function Idp:federated_assertion(req, tenant, t, client_id)
  local c = t.claims
  local app = self.dir:application(client_id)
  local sp = app and self.dir:service_principal(tenant, client_id)
  if not sp then return nil, self:app_not_found(req, tenant, client_id) end
  local aud = type(c.aud) == "table" and c.aud or { c.aud }
  local match
  for _, fic in ipairs(app.federated_credentials) do
    if fic.issuer == c.iss and fic.subject == c.sub then
      for _, want in ipairs(fic.audiences) do
        for _, got in ipairs(aud) do
          if want == got then match = fic end
        end
      end
    end
  end
  if not match then
    return nil, self:error_response(req, 70021, format(
      "No matching federated identity record found for presented assertion. Assertion Issuer: '%s'. Assertion Subject: "
          .. "'%s'. Assertion Audience: '%s'. %s",
      shown(c.iss), shown(c.sub), shown(c.aud), WORKLOAD_DOCS))
  end
  local issuer = self.dir:federated_issuer(match.issuer)
  if not issuer then
    return nil, self:error_response(req, 50166, format(
      "Request to External OIDC endpoint failed: the emulator has no signing keys for issuer '%s' (add it to "
          .. "federated_issuers).",
      shown(match.issuer)))
  end
  if t.header.alg ~= "RS256" and t.header.alg ~= "PS256" then
    return nil, self:error_response(req, 50027, format(
      "JWT token is invalid or malformed: alg '%s' is not supported for federated assertions.", shown(t.header.alg)))
  end
  local verified = false
  for _, k in ipairs(issuer.keys) do
    if (not t.header.kid or not k.kid or k.kid == t.header.kid)
        and jwt.verify(t.token, { algs = { t.header.alg }, key = k.key }) then
      verified = true
      break
    end
  end
  if not verified then
    return nil, self:error_response(req, 700027, format(
      "Client assertion failed signature validation. [Reason - The provided signature value did not match the expected "
          .. "signature value of issuer '%s'.]",
      shown(match.issuer)))
  end
  local now = self.clock:now()
  if type(c.exp) ~= "number" then
    return nil, self:error_response(req, 50027, "JWT token is invalid or malformed: the assertion has no exp claim.")
  end
  if now >= c.exp or (type(c.nbf) == "number" and now + M.ASSERTION_NBF_SKEW < c.nbf) then
    return nil, self:error_response(req, 700024, time_range_message(now, c))
  end
  return sp, "2"
end

-- Reads the client identity and credential of a token request; returns the service
-- principal and azpacr ("1" secret, "2" assertion) or nil, error response.
function Idp:authenticate_client(req, tenant, form)
  local basic_id, basic_secret
  local auth = req.headers and req.headers.authorization
  if type(auth) == "string" and auth:match("^[Bb]asic%s") then
    local decoded = b64_std_decode(auth:match("^%S+%s+(.*)$") or "")
    local id, secret = (decoded or ""):match("^([^:]*):(.*)$")
    if not id then
      return nil, self:error_response(req, 90023, "The Authorization header is not valid HTTP Basic client "
          .. "authentication.")
    end
    basic_id, basic_secret = percent_decode(id), percent_decode(secret)
  end
  local client_id = form.client_id or basic_id
  if basic_id and form.client_id and form.client_id ~= basic_id then
    return nil, self:error_response(req, 90023, "The client_id in the body does not match the client id of the "
        .. "Authorization header.")
  end
  local secret = form.client_secret
  if basic_secret then
    if secret then
      return nil, self:error_response(req, 90023,
        "The client secret was sent both in the body and in the Authorization "
          .. "header; send it once.")
    end
    secret = basic_secret
  end
  local assertion = form.client_assertion
  if secret and assertion then
    return nil, self:error_response(req, 90023,
      "The request contains both a client secret and a client assertion; send "
        .. "only one credential.")
  end

  if assertion then
    if form.client_assertion_type ~= M.ASSERTION_TYPE then
      return nil, self:error_response(req, 90023, format(
        "The client_assertion_type must be '%s'.", M.ASSERTION_TYPE))
    end
    local t, err = jwt.decode(assertion)
    if not t then
      return nil, self:error_response(req, 50027, "JWT token is invalid or malformed: " .. err .. ".")
    end
    t.token = assertion
    local iss, sub = t.claims.iss, t.claims.sub
    if type(iss) ~= "string" or type(sub) ~= "string" then
      return nil, self:error_response(req, 50027, "JWT token is invalid or malformed: the assertion needs iss and sub "
          .. "claims.")
    end
    client_id = client_id or sub
    if directory.is_guid(iss) or iss == client_id then
      -- a certificate assertion: the app signs for itself
      if iss ~= sub then
        return nil, self:error_response(req, 50048, format(
          "Subject mismatches Issuer claim in the client assertion for application '%s'.", shown(client_id)))
      end
      if iss:lower() ~= client_id:lower() then
        return nil, self:error_response(req, 700021, format(
          "Client assertion application identifier doesn't match 'client_id' parameter. %s", CERT_DOCS))
      end
      return self:certificate_assertion(req, tenant, t, client_id)
    end
    if not form.client_id and not basic_id then
      return nil, self:error_response(req, 900144,
        "The request body must contain the following parameter: 'client_id'.")
    end
    return self:federated_assertion(req, tenant, t, client_id)
  end

  if not client_id or client_id == "" then
    return nil, self:error_response(req, 900144, "The request body must contain the following parameter: 'client_id'.")
  end
  local app = self.dir:application(client_id)
  local sp = app and self.dir:service_principal(tenant, client_id)
  if not sp then return nil, self:app_not_found(req, tenant, client_id) end
  if not secret then
    return nil, self:error_response(req, 7000218,
      "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
  end
  local result = self.dir:check_secret(app, secret, self.clock:now())
  if result == "expired" then
    return nil, self:error_response(req, 7000222, format(
      "The provided client secret keys for app '%s' are expired. Visit the Azure portal to create new keys for your "
          .. "app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: "
          .. "https://aka.ms/certCreds.",
      app.client_id))
  elseif result ~= "valid" then
    return nil, self:error_response(req, 7000215, format(
      "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the "
          .. "client secret ID, for a secret added to app '%s'.",
      app.client_id))
  end
  return sp, "1"
end

function Idp:token(req)
  if req.method ~= "POST" then
    return self:error_response(req, 900561, format(
      "The endpoint only accepts POST, OPTIONS requests. Received a %s request.", shown(req.method)))
  end
  local tenant, err_res = self:resolve_tenant(req, req.params.tenant)
  if not tenant then return err_res end
  local body = req.body or ""
  if #body > M.MAX_FORM_BYTES then
    return self:error_response(req, 90023, "The request body is too large.")
  end
  local ctype = (req.headers and req.headers["content-type"] or ""):lower()
  local form, dup = {}
  if ctype:find("application/x-www-form-urlencoded", 1, true) then
    form, dup = parse_form(body)
    if not form then
      return self:error_response(req, 90023,
        format("The request contains the parameter '%s' more than once.", shown(dup)))
    end
  end
  if not form.grant_type or form.grant_type == "" then
    return self:error_response(req, 900144, "The request body must contain the following parameter: 'grant_type'.")
  end
  if form.grant_type ~= "client_credentials" then
    return self:error_response(req, 70003, format(
      "The app requested an unsupported grant type '%s'. The emulator supports client_credentials.",
      shown(form.grant_type)))
  end
  if not form.scope then
    return self:error_response(req, 900144, "The request body must contain the following parameter: 'scope'.")
  end
  local sp, azpacr = self:authenticate_client(req, tenant, form)
  if not sp then return azpacr end
  local audience, scope_err = self:check_scope(req, tenant, form.scope)
  if not audience then return scope_err end
  local token, life = self:mint(tenant, sp, { azpacr = azpacr, audience = audience })
  local out = { token_type = "Bearer", expires_in = life, ext_expires_in = life, access_token = token }
  if type(self.settings.refresh_in) == "number" then out.refresh_in = math.floor(self.settings.refresh_in) end
  local correlation = req.headers and req.headers["client-request-id"]
  local h = { ["x-ms-request-id"] = uuid() }
  if directory.is_guid(correlation) then h["client-request-id"] = correlation end
  return json(200, out, h)
end

---------------------------------------------------------------------------------------
-- metadata: JWKS, OpenID configuration, instance discovery
---------------------------------------------------------------------------------------
function Idp:jwks(tenant)
  local sk = self:signing_key(tenant)
  local jwk = directory.jwk_from_rsa_key(sk.key, sk.kid)
  jwk.x5t = sk.x5t
  jwk.x5c = { b64_std_encode(sk.der) }
  jwk.issuer = self:issuer(tenant.id)
  return { keys = { jwk } }
end

function Idp:openid_configuration(tenant_id)
  local base = self.authority .. "/" .. tenant_id
  return {
    token_endpoint = base .. "/oauth2/v2.0/token",
    token_endpoint_auth_methods_supported = { "client_secret_post", "private_key_jwt", "client_secret_basic" },
    jwks_uri = base .. "/discovery/v2.0/keys",
    response_modes_supported = { "query", "fragment", "form_post" },
    subject_types_supported = { "pairwise" },
    id_token_signing_alg_values_supported = { "RS256" },
    response_types_supported = { "code", "id_token", "code id_token", "id_token token" },
    scopes_supported = { "openid", "profile", "email", "offline_access" },
    issuer = self.authority .. "/" .. tenant_id .. "/v2.0",
    request_uri_parameter_supported = false,
    authorization_endpoint = base .. "/oauth2/v2.0/authorize",
    device_authorization_endpoint = base .. "/oauth2/v2.0/devicecode",
    http_logout_supported = true,
    frontchannel_logout_supported = true,
    end_session_endpoint = base .. "/oauth2/v2.0/logout",
    claims_supported = { "sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "azp", "appid", "idtyp",
      "groups", "xms_mirid", "ver" },
    kerberos_endpoint = base .. "/kerberos",
    tenant_region_scope = "EMU",
    cloud_instance_name = "microsoftonline.com",
    cloud_graph_host_name = "graph.windows.net",
    msgraph_host = "graph.microsoft.com",
    rbac_url = "https://pas.windows.net",
  }
end

function Idp:routes()
  -- Multi-tenant aliases get Entra's "{tenantid}" placeholder in their metadata.
  local function metadata_tenant(req)
    local seg = req.params.tenant or ""
    if SPECIAL_TENANTS[seg:lower()] then return "{tenantid}" end
    local tenant = self.dir:tenant(seg)
    if tenant then return tenant.id end
    return nil, select(2, self:resolve_tenant(req, seg))
  end
  return {
    { method = { "POST", "GET", "PUT", "DELETE", "PATCH" }, template = "/{tenant}/oauth2/v2.0/token",
      handler = function(req) return self:token(req) end },
    { method = "GET", template = "/{tenant}/discovery/v2.0/keys", handler = function(req)
      local tenant = self.dir:tenant(req.params.tenant)
      if not tenant then
        local _, res = self:resolve_tenant(req, req.params.tenant)
        return res
      end
      return json(200, self:jwks(tenant))
    end },
    { method = "GET", template = "/{tenant}/v2.0/.well-known/openid-configuration", handler = function(req)
      local id, res = metadata_tenant(req)
      if not id then return res end
      return json(200, self:openid_configuration(id))
    end },
    { method = "GET", template = "/{tenant}/discovery/instance", handler = function(req)
      local host = self.authority:match("^%a+://([^/]+)")
      local tenant_seg = "common"
      local endpoint = req.query and req.query.authorization_endpoint and req.query.authorization_endpoint[1]
      if endpoint then tenant_seg = endpoint:match("^%a+://[^/]+/([^/]+)/") or tenant_seg end
      return json(200, {
        tenant_discovery_endpoint = self.authority .. "/" .. tenant_seg .. "/v2.0/.well-known/openid-configuration",
        ["api-version"] = "1.1",
        metadata = { { preferred_network = host, preferred_cache = host, aliases = { host } } },
      })
    end },
  }
end

return M
