-- Managed identity endpoints (plain HTTP on the identity port, as on Azure): IMDS, App
-- Service (2019-08-01), the MSI_ENDPOINT forms (Cloud Shell POST, App Service 2017) and
-- Azure Arc (401 challenge with a key file, then Basic). Tokens come from entra.lua.
local cjson = require "cjson.safe"
local rand = require "openssl.rand"
local jwt = require "signalr.emulator.jwt"
local entra = require "signalr.emulator.entra"

local format = string.format

local M = {}

M.IMDS_PATH = "/metadata/identity/oauth2/token"
M.APP_SERVICE_PATH = "/msi/token"
M.MSI_ENDPOINT_PATH = "/msi/legacy"
M.ARC_PATH = "/arc/metadata/identity/oauth2/token"

local IMDS_VERSIONS = { ["2018-02-01"] = true, ["2019-08-01"] = true }
local ARC_VERSIONS = { ["2019-11-01"] = true, ["2020-06-01"] = true }
-- An Arc challenge key is good for one use within this many seconds.
local ARC_KEY_LIFETIME = 300

local MI = {}
MI.__index = MI

local function random_secret()
  return jwt.base64url_encode(rand.bytes(24))
end

-- opts: directory, idp (entra), clock, settings, config (the config's managed_identity
-- section: { identity_header = "..." }), state_dir (optional).
function M.new(opts)
  assert(opts.directory and opts.idp and opts.clock, "managed_identity.new: directory, idp, clock required")
  local cfg = opts.config or {}
  local self = setmetatable({ dir = opts.directory, idp = opts.idp, clock = opts.clock,
    settings = opts.settings or opts.idp.settings or {}, state_dir = opts.state_dir, arc_keys = {} }, MI)
  self.identity_header = cfg.identity_header
  if self.identity_header == nil then
    self.identity_header = self:persisted_secret("identity_header")
  end
  return self
end

-- Validates the config's managed_identity section: true | nil, "field: reason".
function M.validate(section)
  if section == nil then return true end
  if type(section) ~= "table" then return nil, "managed_identity: must be an object" end
  local h = section.identity_header
  if h ~= nil and (type(h) ~= "string" or #h < 8) then
    return nil, "managed_identity.identity_header: must be a string of at least 8 characters"
  end
  return true
end

-- A random secret kept (mode 0600) in the state directory, or in memory without one.
function MI:persisted_secret(name)
  if not self.state_dir then return random_secret() end
  local statedir = require "signalr.emulator.statedir"
  local path = self.state_dir .. "/" .. name
  local existing = statedir.read(path)
  if existing and #existing >= 8 then return (existing:gsub("%s+$", "")) end
  local secret = random_secret()
  assert(statedir.mkdir_p(self.state_dir))
  assert(statedir.write(path, secret, true))
  return secret
end

-- Where the App Service identity header value is stored (for the ready line and users).
function MI:identity_header_file()
  return self.state_dir and (self.state_dir .. "/identity_header") or nil
end

---------------------------------------------------------------------------------------
-- shared pieces
---------------------------------------------------------------------------------------
local function json(status, value, headers)
  local h = headers or {}
  h["content-type"] = "application/json; charset=utf-8"
  return { status = status, headers = h, body = assert(cjson.encode(value)) }
end

local function q(req, name)
  local v = req.query and req.query[name]
  if type(v) == "table" then return v[1] end
  return v
end

local function header(req, name)
  return req.headers and req.headers[name]
end

local function resource_ok(resource)
  return resource == entra.RESOURCE or resource == entra.RESOURCE .. "/"
end

-- The identity selected by at most one of the given selector parameters.
-- Returns mi | nil, "not_found" | nil, "ambiguous".
function MI:select(selectors)
  local chosen, count = {}, 0
  for key, value in pairs(selectors) do
    if value ~= nil and value ~= "" then chosen[key] = value; count = count + 1 end
  end
  if count > 1 then return nil, "ambiguous" end
  local mi = self.dir:managed_identity(chosen)
  if not mi then return nil, "not_found" end
  return mi
end

-- The token's aud is the resource as requested (with or without the trailing slash).
function MI:mint(mi, resource)
  local life = self.settings.managed_identity_token_lifetime
  return self.idp:mint(mi.tenant, mi, { azpacr = "2", lifetime = life, audience = resource })
end

-- The Entra error a real endpoint passes through for a resource Entra does not know.
local function unknown_resource_description(mi, resource)
  return format("AADSTS500011: The resource principal named %s was not found in the tenant named %s. "
    .. "This can happen if the application has not been installed by the administrator of the tenant or "
    .. "consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
    tostring(resource):gsub("%c", ""):sub(1, 200), mi and mi.tenant.name or "?")
end

---------------------------------------------------------------------------------------
-- IMDS (also the body shape of Arc and Cloud Shell answers)
---------------------------------------------------------------------------------------
local function imds_error(status, err, description)
  return json(status, { error = err, error_description = description })
end

local function imds_token_body(self, mi, resource)
  local token, life, claims = self:mint(mi, resource)
  local body = {
    access_token = token, client_id = mi.client_id, expires_in = tostring(life),
    expires_on = tostring(claims.exp), ext_expires_in = tostring(life), not_before = tostring(claims.nbf),
    resource = resource, token_type = "Bearer",
  }
  local refresh_in = self.settings.refresh_in
  if type(refresh_in) == "number" then body.refresh_in = tostring(math.floor(refresh_in)) end
  return body
end

-- The identity and resource an IMDS-style query names (client_id | object_id |
-- msi_res_id, resource), or nil and the error response.
function MI:imds_target(req, not_found_status)
  local resource = q(req, "resource")
  if not resource or resource == "" then
    return nil, imds_error(400, "invalid_request", "Required audience not specified")
  end
  local mi, why = self:select { client_id = q(req, "client_id"), object_id = q(req, "object_id"),
    resource_id = q(req, "msi_res_id") }
  if not mi then
    if why == "ambiguous" then
      return nil, imds_error(400, "invalid_request", "Only one of client_id, object_id or msi_res_id may be specified")
    end
    return nil, imds_error(not_found_status, "invalid_request", "Identity not found")
  end
  if not resource_ok(resource) then
    return nil, json(400, { error = "invalid_resource", error_description = unknown_resource_description(mi, resource),
      error_codes = { 500011 } })
  end
  return mi, resource
end

function MI:imds(req)
  if (header(req, "metadata") or ""):lower() ~= "true" then
    return imds_error(400, "invalid_request", "Required metadata header not specified")
  end
  if header(req, "x-forwarded-for") then
    return imds_error(400, "invalid_request", "Request contains X-Forwarded-For header")
  end
  local version = q(req, "api-version")
  if not version then
    return imds_error(400, "invalid_request", "Required query variable 'api-version' is missing")
  end
  if not IMDS_VERSIONS[version] then
    return imds_error(400, "invalid_request", "Invalid api-version; supported: 2018-02-01, 2019-08-01")
  end
  local mi, resource = self:imds_target(req, 400)
  if not mi then return resource end
  return json(200, imds_token_body(self, mi, resource))
end

---------------------------------------------------------------------------------------
-- App Service 2019-08-01 (IDENTITY_ENDPOINT + IDENTITY_HEADER)
---------------------------------------------------------------------------------------
local function app_service_error(status, message)
  local cid = entra.uuid()
  return json(status, { statusCode = status, message = message, correlationId = cid },
    { ["x-correlation-id"] = cid })
end

function MI:app_service(req)
  local presented = header(req, "x-identity-header")
  if not presented or not jwt.constant_time_equal(presented, self.identity_header) then
    return app_service_error(401, "Invalid or missing X-IDENTITY-HEADER.")
  end
  local version = q(req, "api-version")
  if version ~= "2019-08-01" then
    return app_service_error(400, "api-version must be 2019-08-01.")
  end
  local resource = q(req, "resource")
  if not resource or resource == "" then return app_service_error(400, "resource is required.") end
  local principal = q(req, "principal_id") or q(req, "object_id")
  local mi, why = self:select { client_id = q(req, "client_id"), object_id = principal,
    resource_id = q(req, "mi_res_id") }
  if not mi then
    if why == "ambiguous" then
      return app_service_error(400, "Only one of client_id, principal_id/object_id or mi_res_id may be specified.")
    end
    return app_service_error(400, "Unable to load the proper Managed Identity.")
  end
  if not resource_ok(resource) then return app_service_error(400, unknown_resource_description(mi, resource)) end
  local token, _, claims = self:mint(mi, resource)
  return json(200, { access_token = token, expires_on = tostring(claims.exp), resource = resource,
    token_type = "Bearer", client_id = mi.client_id })
end

---------------------------------------------------------------------------------------
-- MSI_ENDPOINT: Cloud Shell (POST, Metadata: true, form body) and App Service 2017-09-01
-- (GET, header `secret` = MSI_SECRET, expires_on as a date string).
---------------------------------------------------------------------------------------
local function date_2017(t)
  return os.date("!%m/%d/%Y %H:%M:%S +00:00", math.floor(t))
end

function MI:msi_endpoint(req)
  if req.method == "POST" then
    if (header(req, "metadata") or ""):lower() ~= "true" then
      return imds_error(400, "invalid_request", "Required metadata header not specified")
    end
    local form = entra.parse_form(req.body or "") or {}
    local resource = form.resource
    if not resource or resource == "" then
      return imds_error(400, "invalid_request", "Required audience not specified")
    end
    if form.client_id or form.object_id or form.msi_res_id then
      return imds_error(400, "invalid_request", "Cloud Shell supports only the system-assigned identity")
    end
    local mi = self.dir:managed_identity()
    if not mi then return imds_error(400, "invalid_request", "Identity not found") end
    if not resource_ok(resource) then
      return json(400, { error = "invalid_resource", error_description = unknown_resource_description(mi, resource) })
    end
    return json(200, imds_token_body(self, mi, resource))
  end
  local presented = header(req, "secret")
  if not presented or not jwt.constant_time_equal(presented, self.identity_header) then
    return app_service_error(401, "Invalid or missing secret header.")
  end
  if q(req, "api-version") ~= "2017-09-01" then return app_service_error(400, "api-version must be 2017-09-01.") end
  local resource = q(req, "resource")
  if not resource or resource == "" then return app_service_error(400, "resource is required.") end
  local mi = self:select { client_id = q(req, "clientid") }
  if not mi then return app_service_error(400, "Unable to load the proper Managed Identity.") end
  if not resource_ok(resource) then return app_service_error(400, unknown_resource_description(mi, resource)) end
  local token, _, claims = self:mint(mi, resource)
  return json(200, { access_token = token, expires_on = date_2017(claims.exp), resource = resource,
    token_type = "Bearer", client_id = mi.client_id })
end

---------------------------------------------------------------------------------------
-- Azure Arc: the first request gets 401 with `WWW-Authenticate: Basic realm=<key file>`;
-- the client reads the file and repeats the request with `Authorization: Basic <key>`.
---------------------------------------------------------------------------------------
function MI:arc_challenge()
  local statedir = require "signalr.emulator.statedir"
  local dir = self.state_dir .. "/arc"
  assert(statedir.mkdir_p(dir))
  local now = self.clock:now()
  for path, entry in pairs(self.arc_keys) do
    if entry.expires <= now then os.remove(path); self.arc_keys[path] = nil end
  end
  local path = dir .. "/" .. jwt.base64url_encode(rand.bytes(9)) .. ".key"
  local secret = random_secret()
  assert(statedir.write(path, secret, true))
  self.arc_keys[path] = { secret = secret, expires = now + ARC_KEY_LIFETIME }
  return path
end

function MI:arc_authorized(req)
  local auth = header(req, "authorization")
  local presented = type(auth) == "string" and auth:match("^[Bb]asic%s+(%S+)%s*$")
  if not presented then return false end
  local now = self.clock:now()
  for path, entry in pairs(self.arc_keys) do
    if entry.expires > now and jwt.constant_time_equal(presented, entry.secret) then
      self.arc_keys[path] = nil
      os.remove(path)
      return true
    end
  end
  return false
end

function MI:arc(req)
  if (header(req, "metadata") or ""):lower() ~= "true" then
    return imds_error(400, "invalid_request", "Required metadata header not specified")
  end
  local version = q(req, "api-version")
  if not ARC_VERSIONS[version] then
    return imds_error(400, "invalid_request", "Invalid api-version; supported: 2019-11-01, 2020-06-01")
  end
  if not self.state_dir then
    return imds_error(503, "service_unavailable", "Azure Arc emulation needs a state directory for its key files")
  end
  if not header(req, "authorization") then
    local path = self:arc_challenge()
    return json(401, { error = "unauthorized", error_description = "Authorization header is required" },
      { ["www-authenticate"] = "Basic realm=" .. path })
  end
  if not self:arc_authorized(req) then
    return imds_error(401, "unauthorized", "The key presented is not valid; request a new challenge")
  end
  local mi, resource = self:imds_target(req, 404)
  if not mi then return resource end
  local body = imds_token_body(self, mi, resource)
  body.object_id = mi.object_id
  body.msi_res_id = mi.resource_id
  return json(200, body)
end

-- Each path also answers with a trailing slash: msal-node asks IMDS for ".../token/".
function MI:routes()
  local routes = {}
  local function add(method, path, handler)
    routes[#routes + 1] = { method = method, template = path, handler = handler }
    routes[#routes + 1] = { method = method, template = path .. "/", handler = handler }
  end
  add("GET", M.IMDS_PATH, function(req) return self:imds(req) end)
  add("GET", M.APP_SERVICE_PATH, function(req) return self:app_service(req) end)
  add({ "GET", "POST" }, M.MSI_ENDPOINT_PATH, function(req) return self:msi_endpoint(req) end)
  add("GET", M.ARC_PATH, function(req) return self:arc(req) end)
  return routes
end

return M
