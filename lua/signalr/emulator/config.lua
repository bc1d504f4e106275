-- The emulator's configuration: loads the JSON file, fills defaults, validates the parts
-- the service side owns (listeners, resources, settings) with one clear error per bad
-- field. The directory and RBAC sections are passed through to directory.lua / rbac.lua,
-- which validate them.
local json = require "signalr.emulator.json"
local rand = require "openssl.rand"
local statedir = require "signalr.emulator.statedir"

local M = {}

M.SETTINGS = {
  token_lifetime = { default = 3600, min = 60, max = 86400 * 7 },      -- Entra tokens
  temp_key_lifetime = { default = 5400, min = 1, max = 86400 * 7 },    -- 90 minutes on Azure
  keep_alive_interval = { default = 15, min = 0.05, max = 3600 },      -- SignalR server pings
  client_timeout = { default = 30, min = 0.1, max = 3600 },            -- no frame from a client
  handshake_timeout = { default = 15, min = 0.1, max = 3600 },
  invoke_timeout = { default = 30, min = 0.1, max = 3600 },            -- :invoke waits this long
  -- Optional (unset by default): refresh_in in token answers, as Entra sends for long-lived
  -- tokens; a lifetime of managed-identity tokens of their own (else token_lifetime).
  refresh_in = { min = 1, max = 86400 * 7 },
  managed_identity_token_lifetime = { min = 60, max = 86400 * 7 },
}

local NAME_PATTERN = "^[A-Za-z][A-Za-z0-9%-]*$"

local function hex(n) return (rand.bytes(n):gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end

function M.uuid()
  local b = { rand.bytes(16):byte(1, 16) }
  b[7] = (b[7] & 0x0f) | 0x40
  b[9] = (b[9] & 0x3f) | 0x80
  local h = {}
  for i = 1, 16 do h[i] = ("%02x"):format(b[i]) end
  local s = table.concat(h)
  return s:sub(1, 8) .. "-" .. s:sub(9, 12) .. "-" .. s:sub(13, 16) .. "-" .. s:sub(17, 20) .. "-" .. s:sub(21)
end

local GUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
function M.is_guid(s) return type(s) == "string" and s:match(GUID) ~= nil end

-- An access key in the portal's shape: 32 random bytes, base64 (44 characters).
function M.new_access_key()
  local b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local bytes = rand.bytes(33)  -- 33 bytes -> 44 chars without padding; keep Azure's length
  local out = {}
  for i = 1, 33, 3 do
    local a, b, c = bytes:byte(i, i + 2)
    local v = (a << 16) | (b << 8) | c
    for s = 18, 0, -6 do
      local k = ((v >> s) & 63) + 1
      out[#out + 1] = b64:sub(k, k)
    end
  end
  return table.concat(out)
end

function M.new_secret()
  return "emu~" .. hex(20)
end

-- A complete, usable world: one tenant, an app server registration with a secret, one
-- SignalR resource, and the app holding "SignalR Service Owner" on it.
function M.default_world()
  local tenant = M.uuid()
  local sub = M.uuid()
  local app = M.uuid()
  local app_sp = M.uuid()
  local rg = "emulator-rg"
  local name = "signalr1"
  local resource_id = "/subscriptions/" .. sub .. "/resourceGroups/" .. rg ..
    "/providers/Microsoft.SignalRService/SignalR/" .. name
  return {
    tenants = {
      {
        id = tenant, name = "contoso",
        apps = { { name = "app-server", client_id = app, object_id = M.uuid(),
          secrets = { M.new_secret() }, service_principal = { object_id = app_sp } } },
        users = { { name = "alice", object_id = M.uuid() } },
      },
    },
    subscriptions = { { id = sub, tenant = tenant } },
    resources = {
      { name = name, tenant = tenant, subscription = sub, resource_group = rg,
        access_keys = { M.new_access_key(), M.new_access_key() } },
    },
    role_assignments = {
      { principal_id = app_sp, role = "SignalR Service Owner", scope = resource_id },
    },
    settings = {},
  }
end

-------------------------------------------------------------------------------

local function fail(path, msg)
  return nil, "config: " .. path .. ": " .. msg
end

local function check_port(v, path)
  if v == nil then return true end
  if math.type(v) ~= "integer" or v < 0 or v > 65535 then
    return fail(path, "must be an integer port between 0 and 65535 (0 picks a free port)")
  end
  return true
end

function M.decode(text, source)
  local value, err = json.decode(text)
  if type(value) ~= "table" then
    return nil, "config: " .. (source or "input") .. " is not a JSON object (" .. tostring(err or "wrong type") .. ")"
  end
  return value
end

function M.read(path)
  local text, err = statedir.read(path)
  if not text then return nil, "config: cannot read " .. path .. ": " .. tostring(err) end
  return M.decode(text, path)
end

-- A tenant named by id (any case), name or domain -> its id (lower-case).
local function resolve_tenant(cfg, ref)
  if type(ref) ~= "string" then return nil end
  local want = ref:lower()
  for _, t in ipairs(type(cfg.tenants) == "table" and cfg.tenants or {}) do
    if type(t) == "table" and type(t.id) == "string" then
      local names = { t.id, t.name, t.domain }
      for _, d in ipairs(type(t.domains) == "table" and t.domains or {}) do names[#names + 1] = d end
      for _, n in ipairs(names) do
        if type(n) == "string" and n:lower() == want then return t.id:lower() end
      end
    end
  end
  return nil
end

-- Checks a settings table (config "settings" or an admin PUT) and fills defaults.
function M.normalize_settings(s)
  if s == nil then s = {} end
  if type(s) ~= "table" then return fail("settings", "must be an object") end
  local out = {}
  for k, v in pairs(s) do
    local spec = M.SETTINGS[k]
    if not spec then return fail("settings." .. tostring(k), "unknown setting") end
    if type(v) ~= "number" or v < spec.min or v > spec.max then
      return fail("settings." .. k, ("must be a number between %s and %s"):format(spec.min, spec.max))
    end
    out[k] = v
  end
  for k, spec in pairs(M.SETTINGS) do
    if out[k] == nil then out[k] = spec.default end
  end
  return out
end

local function normalize_resources(cfg, base_port)
  local list = cfg.resources
  if list == nil then return fail("resources", "at least one resource is needed") end
  if type(list) ~= "table" or #list == 0 then return fail("resources", "must be a non-empty array") end
  local seen, out = {}, {}
  for i, r in ipairs(list) do
    local p = ("resources[%d]"):format(i)
    if type(r) ~= "table" then return fail(p, "must be an object") end
    if type(r.name) ~= "string" or not r.name:match(NAME_PATTERN) or #r.name < 3 or #r.name > 63 then
      return fail(p .. ".name", "must be 3-63 letters, digits or '-', starting with a letter")
    end
    local lname = r.name:lower()
    if seen[lname] then return fail(p .. ".name", "duplicate resource name") end
    seen[lname] = true
    local tenant = r.tenant and resolve_tenant(cfg, r.tenant)
    if not tenant then return fail(p .. ".tenant", "must name a tenant (id or name) from tenants") end
    local sub = r.subscription
    if sub == nil then
      for _, s in ipairs(type(cfg.subscriptions) == "table" and cfg.subscriptions or {}) do
        if type(s) == "table" and s.tenant == tenant then sub = s.id break end
      end
    end
    if not M.is_guid(sub) then return fail(p .. ".subscription", "must be a subscription id (GUID)") end
    local rg = r.resource_group or "emulator-rg"
    if type(rg) ~= "string" or not rg:match("^[%w%-_%.%(%)]+$") or #rg > 90 then
      return fail(p .. ".resource_group", "must be 1-90 letters, digits, '-', '_', '.', '(' or ')'")
    end
    local ok, err = check_port(r.port, p .. ".port")
    if not ok then return nil, err end
    local port = r.port
    if port == nil then port = base_port == 0 and 0 or base_port + i end
    local keys = r.access_keys
    if keys == nil then
      keys = { M.new_access_key(), M.new_access_key() }
    elseif type(keys) ~= "table" or #keys ~= 2 or type(keys[1]) ~= "string" or type(keys[2]) ~= "string"
        or #keys[1] < 16 or #keys[2] < 16 then
      return fail(p .. ".access_keys", "must be two strings of at least 16 characters")
    end
    if r.disable_local_auth ~= nil and type(r.disable_local_auth) ~= "boolean" then
      return fail(p .. ".disable_local_auth", "must be true or false")
    end
    if r.entra_app ~= nil and type(r.entra_app) ~= "string" then
      return fail(p .. ".entra_app", "must be an app client id")
    end
    out[i] = {
      name = r.name, tenant_id = tenant, subscription = sub, resource_group = rg, port = port,
      access_keys = { keys[1], keys[2] }, disable_local_auth = r.disable_local_auth == true,
      entra_app = r.entra_app,
      resource_id = "/subscriptions/" .. sub .. "/resourceGroups/" .. rg ..
        "/providers/Microsoft.SignalRService/SignalR/" .. r.name,
    }
  end
  return out
end

-- Fills defaults and checks the service-side sections. `overrides` carries command-line
-- options (host, port, http). Returns the config with `listen` and `resources` normalized.
function M.normalize(cfg, overrides)
  overrides = overrides or {}
  if type(cfg) ~= "table" then return nil, "config: must be a JSON object" end
  local host = overrides.host or cfg.host or "localhost"
  if type(host) ~= "string" or host == "" or host:find("[%s/]") then
    return fail("host", "must be a host name or an IP address")
  end
  local port = overrides.port or cfg.port
  if port == nil then port = 8443 end
  local ok, err = check_port(port, "port")
  if not ok then return nil, err end
  ok, err = check_port(cfg.imds_port, "imds_port")
  if not ok then return nil, err end
  if cfg.tenants ~= nil and type(cfg.tenants) ~= "table" then return fail("tenants", "must be an array") end
  local settings
  settings, err = M.normalize_settings(cfg.settings)
  if not settings then return nil, err end
  local resources
  resources, err = normalize_resources(cfg, port)
  if not resources then return nil, err end
  local imds_port = cfg.imds_port
  if imds_port == nil then imds_port = port == 0 and 0 or port + #resources + 1 end
  local used = { [port] = "port" }
  for i, r in ipairs(resources) do
    if r.port ~= 0 then
      if used[r.port] then return fail(("resources[%d].port"):format(i), "port already used by " .. used[r.port]) end
      used[r.port] = "resources[" .. i .. "]"
    end
  end
  if imds_port ~= 0 and used[imds_port] then return fail("imds_port", "port already used by " .. used[imds_port]) end
  cfg.listen = { host = host, port = port, imds_port = imds_port, http = overrides.http or cfg.http == true }
  cfg.settings = settings
  cfg.resources_normalized = resources
  return cfg
end

return M
