-- One SignalR resource: its access keys and local-auth switch, the temporary keys it
-- hands to Entra principals, and the checks every REST call and client token go through.
local jwt = require "signalr.emulator.jwt"
local config = require "signalr.emulator.config"
local server = require "signalr.emulator.server"
local hubs_mod = require "signalr.emulator.hubs"
local rand = require "openssl.rand"

local M = {}

M.ACTION_PREFIX = "Microsoft.SignalRService/SignalR/"
M.MAX_CLIENT_TOKEN = 4096           -- "AccessToken must not be longer than 4K."
local HMAC_ALGS = { "HS256", "HS512" }

-- Which built-in roles grant an action: named in 403 answers so users know what to assign.
local function roles_for(action)
  if action == "auth/accessKey/action" or action == "serverConnection/write" then
    return "'SignalR App Server' or 'SignalR Service Owner'"
  elseif action:match("/read$") then
    return "'SignalR REST API Reader', 'SignalR REST API Owner' or 'SignalR Service Owner'"
  elseif action == "clientConnection/write" then
    return "'SignalR REST API Owner', 'SignalR App Server' or 'SignalR Service Owner'"
  end
  return "'SignalR REST API Owner' or 'SignalR Service Owner'"
end
M.roles_for = roles_for

local Service = {}
Service.__index = Service

-- opts: spec (normalized resource from config), clock, settings, idp?, authz?
function M.new(opts)
  local spec = opts.spec
  local self = setmetatable({
    name = spec.name, resource_id = spec.resource_id, tenant_id = spec.tenant_id,
    subscription = spec.subscription, resource_group = spec.resource_group,
    entra_app = spec.entra_app,
    clock = opts.clock, settings = opts.settings, idp = opts.idp, authz = opts.authz,
    access_keys = nil, local_auth = not spec.disable_local_auth,
    temp_keys = {},
    -- signs :generateToken answers; survives local-auth changes like the service's own key
    service_key = { kid = "emulator." .. config.uuid(), key = config.new_access_key() },
    hubs = hubs_mod.new { clock = opts.clock },
  }, Service)
  if self.local_auth then self.access_keys = { spec.access_keys[1], spec.access_keys[2] } end
  return self
end

function Service:set_endpoint(scheme, host, port)
  self.scheme, self.host, self.port = scheme, host, port
  local h = host:find(":", 1, true) and ("[" .. host .. "]") or host
  self.endpoint = ("%s://%s:%d"):format(scheme, h, port)
end

-- Local auth off deletes both keys for good; on again creates two new ones.
function Service:set_local_auth(enabled)
  if enabled and not self.local_auth then
    self.access_keys = { config.new_access_key(), config.new_access_key() }
  elseif not enabled then
    self.access_keys = nil
  end
  self.local_auth = enabled and true or false
end

function Service:connection_strings()
  local out = {}
  if self.access_keys then
    out.access_key = ("Endpoint=%s;AccessKey=%s;Version=1.0;"):format(self.endpoint, self.access_keys[1])
    out.access_key_secondary = ("Endpoint=%s;AccessKey=%s;Version=1.0;"):format(self.endpoint, self.access_keys[2])
  end
  if self.entra_app then
    out.entra = ("Endpoint=%s;AuthType=azure.app;ClientId=%s;TenantId=%s;Version=1.0;"):format(
      self.endpoint, self.entra_app, self.tenant_id)
  else
    out.entra = ("Endpoint=%s;AuthType=azure;Version=1.0;"):format(self.endpoint)
  end
  return out
end

-------------------------------------------------------------------------------
-- Temporary access keys (GET /api/v1/auth/accessKey)

function Service:issue_temp_key(principal)
  local now = self.clock:now()
  for id, t in pairs(self.temp_keys) do
    if t.expires_at <= now then self.temp_keys[id] = nil end
  end
  local kid = config.uuid()
  local key = config.new_access_key()
  self.temp_keys[kid] = { key = key, expires_at = self.clock:now() + self.settings.temp_key_lifetime,
    principal_id = principal and principal.object_id }
  return { KeyId = kid, AccessKey = key }
end

-- Returns key | nil, reason. Forgets keys that have expired.
function Service:temp_key(kid)
  local t = self.temp_keys[kid]
  if not t then return nil end
  if t.expires_at <= self.clock:now() then
    self.temp_keys[kid] = nil
    return nil, "the temporary access key this token was signed with has expired"
  end
  return t.key
end

-------------------------------------------------------------------------------
-- Token checks

local function bearer(req)
  local h = req.headers.authorization
  if not h then return nil end
  return h:match("^[Bb][Ee][Aa][Rr][Ee][Rr]%s+(%S+)%s*$")
end
M.bearer = bearer

local function challenge(reason)
  -- the reason texts come from our own checks: no token text, no key material
  return ('Bearer error="invalid_token", error_description="%s"'):format((tostring(reason):gsub('"', "'")))
end

local function unauthorized(reason)
  return server.error(401, "Unauthorized", reason, nil, { ["www-authenticate"] = challenge(reason) })
end
M.unauthorized = unauthorized

-- A token may start a little ahead of this clock: the signer's clock is another process's
-- (and os.time() reads a coarse clock that lags the precise one at a second boundary),
-- as ASP.NET's JWT validation allows five minutes. Expiry stays exact.
local NBF_SKEW = 300

-- Tries every candidate key for an HS256/HS512 token. candidates: list of keys.
local function verify_hmac(token, candidates, now)
  local last_reason, last_kind = "no key accepted this token", "key"
  for _, key in ipairs(candidates) do
    local header, claims, kind
    header, claims, kind = jwt.verify(token, { algs = HMAC_ALGS, key = key, now = now, require_exp = true,
      nbf_skew = NBF_SKEW })
    if header then return header, claims end
    last_reason, last_kind = claims, kind
    if kind ~= "signature" then break end  -- only a wrong key is worth another try
  end
  if last_kind == "signature" then
    last_reason = "token signature does not match any access key of this resource"
  end
  return nil, last_reason, last_kind
end

-- The keys that may have signed an HMAC token: the temporary key named by kid, else the
-- access keys while local auth is on. Returns list | nil, reason.
function Service:hmac_candidates(header, extra)
  if type(header.kid) == "string" then
    local key, why = self:temp_key(header.kid)
    if key then return { key } end
    if why then return nil, why end
    if extra and header.kid == extra.kid then return { extra.key } end
  end
  if not self.access_keys then
    return nil, "local authentication is disabled on this resource: use a Microsoft Entra ID token"
  end
  return self.access_keys
end

local function strip_port(host)
  if not host then return nil end
  local v6 = host:match("^%[(.-)%]")
  if v6 then return v6:lower() end
  return (host:gsub(":%d+$", "")):lower()
end
M.strip_port = strip_port

local function split_url(u)
  if type(u) ~= "string" then return nil end
  local scheme, authority, path, query = u:match("^(%a[%w+.-]*)://([^/?#]*)([^?#]*)%??([^#]*)$")
  if not scheme then return nil end
  return scheme:lower(), authority, path, query
end

-- aud of a REST token: the request URL, with or without its query (the SDK signs only
-- application and api-version), host with or without port, path compared decoded.
function Service:rest_audience_ok(aud, req)
  local list = type(aud) == "table" and aud or { aud }
  local req_host = strip_port(req.host)
  for _, a in ipairs(list) do
    local scheme, authority, path, query = split_url(a)
    if scheme == req.scheme then
      local host = strip_port(authority)
      local host_ok = host == req_host or host == (self.host and self.host:lower())
      local port = authority:match(":(%d+)$")
      if port and tonumber(port) ~= req.port then host_ok = false end
      local aud_path = "/" .. table.concat(server.split_path(path == "" and "/" or path), "/")
      if host_ok and aud_path == req.path then
        local q_ok = true
        for name, values in pairs(server.parse_query(query)) do
          local have = req.query[name]
          if not have then q_ok = false break end
          for _, v in ipairs(values) do
            local found = false
            for _, hv in ipairs(have) do if hv == v then found = true break end end
            if not found then q_ok = false break end
          end
          if not q_ok then break end
        end
        if q_ok then return true end
      end
    end
  end
  return false
end

-- Authorizes a data-plane request for `action` (e.g. "hub/send/action").
-- Returns { kind = "access_key"|"temp_key"|"entra", principal? } | nil, response.
function Service:authorize(req, action)
  local token = bearer(req)
  if not token then
    return nil, unauthorized("an Authorization: Bearer token is required")
  end
  local t, reason = jwt.decode(token)
  if not t then return nil, unauthorized(reason) end
  local alg = t.header.alg
  if alg == "HS256" or alg == "HS512" then
    local candidates, why = self:hmac_candidates(t.header)
    if not candidates then return nil, unauthorized(why) end
    local header, claims = verify_hmac(token, candidates, self.clock:now())
    if not header then return nil, unauthorized(claims) end
    if not self:rest_audience_ok(claims.aud, req) then
      return nil, unauthorized("token audience does not match the request URL")
    end
    return { kind = (type(t.header.kid) == "string" and self.temp_keys[t.header.kid]) and "temp_key" or "access_key" }
  end
  return self:authorize_entra(token, action)
end

-- Entra bearer tokens only (the accessKey endpoint accepts nothing else).
function Service:authorize_entra(token, action)
  if not self.idp then
    return nil, unauthorized("Microsoft Entra ID is not available in this emulator build")
  end
  local principal, why = self.idp:validate(token, self.tenant_id)
  if not principal then
    return nil, unauthorized(why or "invalid Microsoft Entra ID token")
  end
  local full = M.ACTION_PREFIX .. action
  local ok, deny = false, "no role assignment grants it"
  if self.authz then ok, deny = self.authz:check(principal, self.resource_id, full) end
  if not ok then
    local roles = roles_for(action)
    if self.authz and self.authz.roles_granting then
      local names = self.authz:roles_granting(full)
      if #names > 0 then roles = "'" .. table.concat(names, "', '") .. "'" end
    end
    return nil, server.error(403, "Forbidden", ("Forbidden: the caller lacks the data action %s on %s (%s). " ..
      "Roles that grant it: %s. New role assignments can take up to 30 minutes to take effect on Azure.")
      :format(full, self.resource_id, tostring(deny or "no role assignment grants it"), roles), full)
  end
  return { kind = "entra", principal = principal }
end

-- Verifies a client access token for hub `hub_key`. Returns claims | nil, reason, status.
function Service:verify_client_token(token, hub_key, req)
  if #token > M.MAX_CLIENT_TOKEN then
    return nil, "AccessToken must not be longer than 4K.", 413
  end
  local t, reason = jwt.decode(token)
  if not t then return nil, reason, 401 end
  if t.header.alg ~= "HS256" and t.header.alg ~= "HS512" then
    return nil, "client tokens must be HS256 or HS512", 401
  end
  local candidates, why = self:hmac_candidates(t.header, self.service_key)
  if not candidates then return nil, why, 401 end
  local header, claims = verify_hmac(token, candidates, self.clock:now())
  if not header then return nil, claims, 401 end
  local list = type(claims.aud) == "table" and claims.aud or { claims.aud }
  local ok = false
  for _, a in ipairs(list) do
    local scheme, authority, path, query = split_url(a)
    if scheme == req.scheme and not authority:match(":%d+$") and path == "/client/" then
      local host = strip_port(authority)
      local q = server.parse_query(query)
      if (host == strip_port(req.host) or host == (self.host and self.host:lower()))
          and q.hub and #q.hub == 1 and q.hub[1]:lower() == hub_key then
        ok = true
        break
      end
    end
  end
  if not ok then
    return nil, "token audience must be " .. req.scheme .. "://" .. (self.host or "host") ..
      "/client/?hub=" .. hub_key .. " (scheme and host of the endpoint, no port)", 401
  end
  return claims
end

function Service:sign_client_token(hub_key, user_id, roles, groups, lifetime)
  local now = self.clock:now()
  local claims = { nbf = now, iat = now, exp = now + lifetime, iss = "azure-signalr",
    aud = ("%s://%s/client/?hub=%s"):format(self.scheme, self.host, hub_key) }
  if user_id then claims["asrs.s.uid"] = user_id; claims.nameid = user_id end
  if roles and #roles > 0 then claims.role = #roles == 1 and roles[1] or roles end
  if groups and #groups > 0 then claims["asrs.s.emulator.groups"] = groups end
  return jwt.encode({ alg = "HS256", typ = "JWT", kid = self.service_key.kid }, claims, self.service_key.key)
end

-------------------------------------------------------------------------------
-- Routes of the resource itself: temporary keys and health.

local KEY_VERSIONS = { ["2023-07-01"] = true, ["2024-01-01"] = true, ["2024-12-01"] = true }

local function access_key(svc, req, versioned)
  if versioned then
    local v = req.query["api-version"]
    if not v or #v ~= 1 or not KEY_VERSIONS[v[1]] then
      return server.error(400, v and "UnsupportedApiVersion" or "MissingApiVersion",
        "api-version must be one of 2023-07-01, 2024-01-01, 2024-12-01.", "api-version")
    end
  end
  local token = bearer(req)
  if not token then return unauthorized("a Microsoft Entra ID bearer token is required") end
  local t = jwt.decode(token)
  if t and (t.header.alg == "HS256" or t.header.alg == "HS512") then
    return unauthorized("temporary access keys are issued for Microsoft Entra ID tokens only, not access-key tokens")
  end
  local auth, deny = svc:authorize_entra(token, "auth/accessKey/action")
  if not auth then return deny end
  return server.json(200, svc:issue_temp_key(auth.principal))
end

local function health()
  return { status = 200, headers = {}, body = "" }
end
M.health = health

function M.routes(svc)
  return {
    { method = "GET", template = "/api/v1/auth/accessKey",
      handler = function(req) return access_key(svc, req, false) end },
    { method = "GET", template = "/api/auth/accessKey", handler = function(req) return access_key(svc, req, true) end },
    { method = { "HEAD", "GET" }, template = "/api/health", handler = health },
    { method = { "HEAD", "GET" }, template = "/api/v1/health", handler = health },
  }
end

function Service.random_id(_)
  return (rand.bytes(16):gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

return M
