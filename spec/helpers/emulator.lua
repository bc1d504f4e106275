-- Starts signalr-emulator for a spec (always under lua5.4, whatever runs the spec) and
-- talks to its admin API. Works on Lua 5.4 and LuaJIT; never uses the SDK.
--
--   local emulator = require "spec.helpers.emulator"
--   local emu = emulator.start { config = { settings = { temp_key_lifetime = 60 } } }
--   emu.authority, emu.imds, emu.ca_file, emu.resources.signalr1.endpoint / .resource_id /
--   .tenant_id / .connection_string / .access_keys, emu.world (ids and secrets of the
--   default world), emu:admin("POST", "/admin/clock", { advance = 60 }) -> status, body,
--   emu:request{ method =, url =, headers =, body = } -> status, headers, body, emu:stop().
--
-- `config` is merged over the test default: top-level keys replace the default's, except
-- `settings`, whose keys are merged. Start-up blocks on the emulator's ready line.
-- Debian ships lua-http (and lpeg_patterns) only under the 5.1-5.3 paths.
if _VERSION == "Lua 5.4" then
  for _, v in ipairs { "5.3", "5.2" } do
    if not package.path:find("/usr/share/lua/" .. v .. "/?.lua", 1, true) then
      package.path = package.path .. (";/usr/share/lua/%s/?.lua;/usr/share/lua/%s/?/init.lua"):format(v, v)
    end
  end
end

local cjson = require "cjson.safe"
local http_request = require "http.request"
local http_tls = require "http.tls"
local rand = require "openssl.rand"

local M = {}

M.LUA = os.getenv("SIGNALR_EMULATOR_LUA") or "lua5.4"

local function script_dir()
  local src = debug.getinfo(1, "S").source
  return (src:sub(1, 1) == "@" and src:sub(2):match("^(.*)/[^/]*$")) or "spec/helpers"
end

M.ROOT = script_dir() .. "/../.."
M.BIN = M.ROOT .. "/bin/signalr-emulator"

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function hex(n)
  return (rand.bytes(n):gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

function M.uuid()
  local h = hex(16)
  local v = ("%x"):format(8 + tonumber(h:sub(17, 17), 16) % 4)
  return h:sub(1, 8) .. "-" .. h:sub(9, 12) .. "-4" .. h:sub(14, 16) .. "-" .. v .. h:sub(18,
      20) .. "-" .. h:sub(21, 32)
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  f:close()
end

-- This process's id (the emulator stops when it is gone: --watch-pid).
local function my_pid()
  local stat = read_file("/proc/self/stat")
  return stat and stat:match("^(%d+)")
end

-- One state directory per spec process: the CA and Entra signing keys are reused.
local state_dir
local function get_state_dir()
  if not state_dir then
    local base = os.tmpname()
    os.remove(base)
    state_dir = base .. ".emulator"
    assert(os.execute("mkdir -p -m 0700 " .. shell_quote(state_dir)))
  end
  return state_dir
end
M.state_dir = get_state_dir

-- The default test world (ids and secrets generated once per process, so signing keys
-- cached in the state directory are reused across starts).
local world
function M.world()
  if world then return world end
  local k = function() return hex(22) end
  world = {
    tenant_id = M.uuid(), other_tenant_id = M.uuid(), subscription = M.uuid(),
    app_id = M.uuid(), app_sp = M.uuid(), app_secret = "s~" .. hex(16),
    reader_app_id = M.uuid(), reader_sp = M.uuid(), reader_secret = "s~" .. hex(16),
    user = M.uuid(), other_user = M.uuid(),
    access_keys = { k(), k() },
    second_keys = { k(), k() },
  }
  return world
end

function M.resource_id(sub, name)
  return "/subscriptions/" .. sub .. "/resourceGroups/emulator-rg/providers/Microsoft.SignalRService/SignalR/" .. name
end

function M.default_config()
  local w = M.world()
  return {
    port = 0, imds_port = 0,
    tenants = {
      { id = w.tenant_id, name = "contoso",
        apps = {
          { name = "app-server", client_id = w.app_id, secrets = { w.app_secret },
            service_principal = { object_id = w.app_sp } },
          { name = "reader", client_id = w.reader_app_id, secrets = { w.reader_secret },
            service_principal = { object_id = w.reader_sp } },
        },
        users = { { name = "alice", object_id = w.user } } },
      { id = w.other_tenant_id, name = "fabrikam", users = { { name = "mallory", object_id = w.other_user } } },
    },
    subscriptions = { { id = w.subscription, tenant = w.tenant_id } },
    resources = {
      { name = "signalr1", tenant = w.tenant_id, subscription = w.subscription, port = 0,
        access_keys = { w.access_keys[1], w.access_keys[2] } },
    },
    role_assignments = {
      { principal_id = w.app_sp, role = "SignalR Service Owner", scope = M.resource_id(w.subscription, "signalr1") },
    },
    settings = {},
  }
end

local function merged_config(over)
  local cfg = M.default_config()
  for k, v in pairs(over or {}) do
    if k == "settings" then
      for sk, sv in pairs(v) do cfg.settings[sk] = sv end
    else
      cfg[k] = v
    end
  end
  if next(cfg.settings) == nil then cfg.settings = nil end
  return cfg
end

-------------------------------------------------------------------------------
-- HTTPS client trusting the emulator's CA (TLS verification stays on)

local contexts = {}
function M.client_context(ca_file)
  if not ca_file then return nil end
  local ctx = contexts[ca_file]
  if not ctx then
    ctx = http_tls.new_client_context()
    ctx:getStore():add(ca_file)
    -- OpenSSL 3 + cqueues: make a peer's close without close_notify a clean EOF (bit 7,
    -- SSL_OP_IGNORE_UNEXPECTED_EOF) instead of a busy loop
    local ok, version = pcall(function() return require "openssl".version() end)
    if ok and type(version) == "number" and version >= 0x30000000 then ctx:setOptions(0x80) end
    contexts[ca_file] = ctx
  end
  return ctx
end

-- opts: method, url, headers (table), body (string), ca_file, timeout, raw_path (sent as
-- the request target as is, even when it is not a valid URI path; url then gives the origin).
-- Returns status (number), headers (lua-http object), body | nil, err.
function M.http(opts)
  local req = http_request.new_from_uri(opts.url)
  if opts.raw_path then req.headers:upsert(":path", opts.raw_path) end
  req.ctx = M.client_context(opts.ca_file)
  req.headers:upsert(":method", opts.method or "GET")
  for k, v in pairs(opts.headers or {}) do req.headers:upsert(k:lower(), v) end
  if opts.body then req:set_body(opts.body) end
  local headers, stream = req:go(opts.timeout or 10)
  if not headers then return nil, tostring(stream) end
  local body = ""
  if (opts.method or "GET") ~= "HEAD" then
    local err
    body, err = stream:get_body_as_string(opts.timeout or 10)
    if not body then return nil, tostring(err) end
  end
  stream:shutdown()
  return tonumber(headers:get(":status")), headers, body
end

local Emu = {}
Emu.__index = Emu

function Emu:request(opts)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.ca_file = o.ca_file or self.ca_file
  return M.http(o)
end

-- Calls the admin API. Returns status, decoded JSON body (or raw text) | nil, err.
function Emu:admin(method, path, body)
  local status, _, text = self:request {
    method = method, url = self.authority .. path, body = body ~= nil and cjson.encode(body) or nil,
    headers = { authorization = "Bearer " .. self.admin_secret, ["content-type"] = "application/json" },
  }
  if not status then return nil, _ end
  local decoded = text ~= "" and cjson.decode(text) or nil
  return status, decoded == nil and text or decoded
end

-- Refreshes resources[*].connection_string / access_keys from the admin API.
function Emu:refresh_resources()
  local status, body = self:admin("GET", "/admin/resources")
  assert(status == 200, "admin GET /admin/resources failed: " .. tostring(status))
  for _, r in ipairs(body.resources) do
    local res = self.resources[r.name] or {}
    res.endpoint, res.resource_id, res.tenant_id = r.endpoint, r.resource_id, r.tenant_id
    res.access_keys = r.access_keys
    res.connection_string = r.connection_strings and r.connection_strings.access_key
    res.entra_connection_string = r.connection_strings and r.connection_strings.entra
    self.resources[r.name] = res
  end
end

function Emu:log()
  return read_file(self.log_file) or ""
end

-- Stops the emulator (SIGTERM) and returns its exit status (true on a clean exit).
function Emu:stop(signal)
  if self.stopped then return self.exit_ok end
  self.stopped = true
  os.execute(("kill -%s %d 2>/dev/null"):format(signal or "TERM", self.pid))
  self.pipe:read("*a")
  local ok, how, code = self.pipe:close()
  self.exit_ok = ok == true or (how == "exit" and code == 0)
  return self.exit_ok, how, code
end

local function guard(emu)
  -- If a spec forgets stop(), stop the emulator when the handle is collected (the pipe's
  -- own finalizer would otherwise wait for the child forever).
  if newproxy then
    local p = newproxy(true)
    getmetatable(p).__gc = function() if not emu.stopped then emu:stop() end end
    emu._guard = p
  else
    setmetatable(emu, { __index = Emu, __gc = function(e) if not e.stopped then e:stop() end end })
  end
end

-- opts: config (merged over the default), args (extra command-line arguments),
-- raw_config (used as is instead of the merge), env (table of environment variables).
function M.start(opts)
  opts = opts or {}
  local dir = get_state_dir()
  local cfg = opts.raw_config or merged_config(opts.config)
  local id = hex(6)
  local config_file = dir .. "/config-" .. id .. ".json"
  local log_file = dir .. "/log-" .. id .. ".txt"
  write_file(config_file, assert(cjson.encode(cfg)))
  local env = ""
  for k, v in pairs(opts.env or {}) do env = env .. k .. "=" .. shell_quote(v) .. " " end
  -- the emulator is Lua 5.4: under LuaJIT, LUA_PATH/LUA_CPATH name 5.1 modules it must
  -- not load (LUA_PATH_5_4/LUA_CPATH_5_4, when set, still apply)
  local unset = _VERSION ~= "Lua 5.4" and "env -u LUA_PATH -u LUA_CPATH " or ""
  local cmd = table.concat({
    "exec", unset .. env .. shell_quote(M.LUA), shell_quote(M.BIN), "--config", shell_quote(config_file),
    "--state-dir", shell_quote(dir), "--ready-json", "--log-file", shell_quote(log_file),
    "--watch-pid", my_pid() or "1", table.concat(opts.args or {}, " "),
    "2>>" .. shell_quote(log_file),
  }, " ")
  local pipe = assert(io.popen(cmd, "r"))
  local line = pipe:read("*l")
  local ready = line and cjson.decode(line)
  if type(ready) ~= "table" then
    pipe:close()
    local log = read_file(log_file) or ""
    error("signalr-emulator did not start: " .. (log ~= "" and log or tostring(line)), 2)
  end
  local emu = setmetatable({
    pipe = pipe, pid = ready.pid, authority = ready.authority, imds = ready.imds,
    ca_file = ready.ca_file, admin_secret_file = ready.admin_secret_file,
    resources = ready.resources or {}, log_file = log_file, config = cfg, world = M.world(),
    ready = ready,
  }, Emu)
  emu.admin_secret = (read_file(ready.admin_secret_file) or ""):match("%S+")
  guard(emu)
  emu:refresh_resources()
  return emu
end

return M
