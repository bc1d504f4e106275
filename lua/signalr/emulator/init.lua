-- emulator.start(config, opts): builds every part, opens every listener and returns a
-- handle; emulator.run(handle) serves until handle:stop() (or a signal in bin/).
local cqueues = require "cqueues"
local config_mod = require "signalr.emulator.config"
local clock_mod = require "signalr.emulator.clock"
local tls_mod = require "signalr.emulator.tls"
local server = require "signalr.emulator.server"
local service = require "signalr.emulator.service"
local rest = require "signalr.emulator.rest"
local client = require "signalr.emulator.client"
local admin = require "signalr.emulator.admin"
local statedir = require "signalr.emulator.statedir"
local directory_mod = require "signalr.emulator.directory"
local entra_mod = require "signalr.emulator.entra"
local rbac_mod = require "signalr.emulator.rbac"
local mi_mod = require "signalr.emulator.managed_identity"

local M = { _VERSION = "0.1.0" }

local function hex(n)
  return (require "openssl.rand".bytes(n):gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

-- The admin secret: from `path` when it exists, else generated into it (mode 0600).
local function admin_secret(path)
  local text = statedir.read(path)
  if text then
    local s = text:match("^%s*(%S+)%s*$")
    if s and #s >= 16 then return s end
    return nil, "admin secret file " .. path .. " must hold one token of at least 16 characters"
  end
  local s = hex(24)
  local ok, err = statedir.write(path, s .. "\n", true)
  if not ok then return nil, "cannot write admin secret file " .. path .. ": " .. tostring(err) end
  return s
end

local function url(scheme, host, port)
  if host:find(":", 1, true) then host = "[" .. host .. "]" end
  return ("%s://%s:%d"):format(scheme, host, port)
end

-- The addresses to bind for a host: "localhost" means both loopbacks (Node may resolve
-- localhost to ::1); ::1 is optional where IPv6 is off.
local function addresses(host)
  if host == "localhost" then return { "127.0.0.1", "::1" }, true end
  return { host }, false
end

-- The app registration named in the printed Entra connection string: the first app of the
-- resource's tenant (config order) whose service principal holds a role on the resource
-- or above, else the tenant's first app.
local function default_entra_app(cfg, dir, authz, svc)
  local tenant = dir:tenant(svc.tenant_id)
  if not tenant then return nil end
  local apps = {}
  for _, t in ipairs(cfg.tenants or {}) do
    if type(t) == "table" and type(t.id) == "string" and t.id:lower() == tenant.id then
      for _, a in ipairs(type(t.apps) == "table" and t.apps or {}) do
        if type(a) == "table" and type(a.client_id) == "string" then apps[#apps + 1] = a.client_id:lower() end
      end
    end
  end
  local resource = svc.resource_id:lower()
  for _, client_id in ipairs(apps) do
    local sp = dir:service_principal(tenant, client_id)
    for _, a in ipairs(authz and sp and authz:list_assignments() or {}) do
      local scope = tostring(a.scope):lower()
      if a.principal_id == sp.object_id and resource:sub(1, #scope) == scope then return client_id end
    end
  end
  return apps[1]
end

-- opts: state_dir (absolute), log (fn(line)), admin_secret_file, base_dir (config dir)
-- Returns handle | nil, err.
function M.start(cfg, opts)
  opts = opts or {}
  local log = opts.log or function() end
  local listen = cfg.listen
  local scheme = listen.http and "http" or "https"
  local state_dir = opts.state_dir
  local ok, err = statedir.mkdir_p(state_dir)
  if not ok then return nil, err end

  local clock = clock_mod.new()
  local settings = cfg.settings
  local counters, faults = server.counters(), server.faults()
  local srv = server.new { log = log, counters = counters, faults = faults }

  local tls_material, ctx
  if not listen.http then
    local hosts = { "localhost", "127.0.0.1", "::1" }
    if listen.host ~= "localhost" and listen.host ~= "127.0.0.1" and listen.host ~= "::1" then
      hosts[#hosts + 1] = listen.host
    end
    tls_material, err = tls_mod.ensure(state_dir .. "/tls", hosts)
    if not tls_material then return nil, err end
    ctx = tls_material.server_context()
  end

  local secret_file = opts.admin_secret_file or (state_dir .. "/admin-secret")
  local secret
  secret, err = admin_secret(secret_file)
  if not secret then return nil, err end

  -- identity side
  cfg.base_dir = opts.base_dir
  local dir
  dir, err = directory_mod.new(cfg)
  if not dir then return nil, "config: " .. tostring(err) end
  local authz
  authz, err = rbac_mod.new { directory = dir, config = cfg }
  if not authz then return nil, "config: " .. tostring(err) end
  local mi_ok, mi_err = mi_mod.validate(cfg.managed_identity)
  if not mi_ok then return nil, "config: " .. tostring(mi_err) end

  -- listeners first: the authority URL needs the real port when port 0 was asked
  local main_router = server.router()
  local addrs, extra_optional = addresses(listen.host)
  local main
  main, err = srv:listen { name = "entra", addresses = addrs, port = listen.port, tls_ctx = ctx,
    router = main_router, optional_extra = extra_optional }
  if not main then return nil, err end
  local authority = url(scheme, listen.host, main.port)

  local idp = entra_mod.new { directory = dir, clock = clock, settings = settings, authority = authority,
    state_dir = state_dir }

  local services = {}
  for _, spec in ipairs(cfg.resources_normalized) do
    local svc = service.new { spec = spec, clock = clock, settings = settings, idp = idp, authz = authz }
    if not svc.entra_app then svc.entra_app = default_entra_app(cfg, dir, authz, svc) end
    local router = server.router()
    for _, r in ipairs(service.routes(svc)) do router:add(r) end
    for _, r in ipairs(rest.routes(svc)) do router:add(r) end
    for _, r in ipairs(client.routes(svc)) do router:add(r) end
    local l
    l, err = srv:listen { name = spec.name, addresses = addrs, port = spec.port, tls_ctx = ctx,
      router = router, resource = svc, optional_extra = extra_optional }
    if not l then srv:close() return nil, err end
    svc:set_endpoint(scheme, listen.host, l.port)
    services[#services + 1] = svc
  end

  -- main port: Entra ID, admin API, health
  for _, r in ipairs(idp:routes()) do main_router:add(r) end
  for _, r in ipairs(admin.routes { services = services, clock = clock, settings = settings,
    faults = faults, counters = counters, authz = authz, idp = idp, directory = dir, secret = secret }) do
    main_router:add(r)
  end
  main_router:add { method = { "HEAD", "GET" }, template = "/api/health", handler = service.health }

  -- managed identity endpoints: plain HTTP on 127.0.0.1, as IMDS is plain HTTP on Azure
  local mi = mi_mod.new { directory = dir, idp = idp, clock = clock, settings = settings,
    config = cfg.managed_identity, state_dir = state_dir }
  local imds_router = server.router()
  for _, r in ipairs(mi:routes()) do imds_router:add(r) end
  imds_router:add { method = { "HEAD", "GET" }, template = "/api/health", handler = service.health }
  local imds
  imds, err = srv:listen { name = "imds", addresses = { "127.0.0.1" }, port = listen.imds_port,
    router = imds_router }
  if not imds then srv:close() return nil, err end
  local imds_url = url("http", "127.0.0.1", imds.port)
  local identity_header_file = mi:identity_header_file()

  local cq = cqueues.new()
  srv:attach(cq)
  local handle = {
    cq = cq, server = srv, services = services, clock = clock, settings = settings,
    authority = authority, imds = imds_url, ca_file = tls_material and tls_material.ca_file,
    admin_secret_file = secret_file, identity_header_file = identity_header_file,
    idp = idp, authz = authz, directory = dir,
    counters = counters, faults = faults, stopped = false,
  }
  -- stop() may be called from anywhere (a signal watcher, a spec); run() does the work
  function handle.stop(h) h.stopped = true end
  return handle
end

-- The ready description (also the --ready-json line).
function M.describe(handle)
  local resources = {}
  for _, svc in ipairs(handle.services) do
    resources[svc.name] = { endpoint = svc.endpoint, resource_id = svc.resource_id, tenant_id = svc.tenant_id }
  end
  return {
    pid = M.pid(), authority = handle.authority, imds = handle.imds, ca_file = handle.ca_file,
    admin_secret_file = handle.admin_secret_file, identity_header_file = handle.identity_header_file,
    resources = resources,
  }
end

function M.pid()
  local f = io.open("/proc/self/stat", "r")
  if not f then return nil end
  local pid = f:read("n")
  f:close()
  return pid
end

local function live_connections(handle)
  local n = 0
  for _, svc in ipairs(handle.services) do n = n + #svc.hubs:all_connections() end
  return n
end

-- Serves until stop(); then sends every client a Close message, gives the writers a
-- moment to flush, and closes the listeners. Errors inside one coroutine are logged,
-- never fatal.
function M.run(handle, log)
  log = log or function() end
  local function step(timeout)
    local ok, err = handle.cq:step(timeout)
    if not ok then log("error: " .. tostring(err)) end
  end
  while not handle.stopped do step(1) end
  local closing = {}
  for _, svc in ipairs(handle.services) do
    for _, c in ipairs(svc.hubs:all_connections()) do
      svc.hubs:remove_connection(c.hub, c.id)
      closing[#closing + 1] = c
      c.close("The emulator is shutting down.")
    end
  end
  local deadline = cqueues.monotime() + 1
  local function flushed()
    for _, c in ipairs(closing) do
      if not c.writer_done then return false end
    end
    return true
  end
  while not flushed() and cqueues.monotime() < deadline do step(0.02) end
  handle.server:close()
end

M.live_connections = live_connections
M.config = config_mod
return M
