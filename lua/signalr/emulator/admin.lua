-- The admin API (loopback only, its own bearer secret): resources and their keys, the
-- local-auth switch, role assignments, the clock, settings, Entra tokens for any
-- principal, fault injection, counters and live connections. JSON in, JSON out.
local server = require "signalr.emulator.server"
local json = require "signalr.emulator.json"
local jwt = require "signalr.emulator.jwt"
local config = require "signalr.emulator.config"

local M = {}

local function bad(message)
  return server.error(400, "BadRequest", message)
end

local function body_object(req)
  if (req.body or "") == "" then return {} end
  local v, err = json.decode(req.body)
  if type(v) ~= "table" or req.body:match("^%s*%[") then
    return nil, bad("body must be a JSON object" .. (err and (": " .. err) or ""))
  end
  return v
end

local function resource_view(svc)
  return {
    name = svc.name, endpoint = svc.endpoint, resource_id = svc.resource_id, tenant_id = svc.tenant_id,
    local_auth = svc.local_auth,
    access_keys = svc.access_keys and json.array { svc.access_keys[1], svc.access_keys[2] } or json.array(),
    connection_strings = svc:connection_strings(),
  }
end

-- ctx: services (list), clock, settings, faults, counters, authz?, idp?, directory?, secret
function M.routes(ctx)
  local by_name = {}
  for _, svc in ipairs(ctx.services) do by_name[svc.name:lower()] = svc end

  local function guard(handler)
    return function(req)
      if not req.loopback then
        return server.error(403, "Forbidden", "The admin API answers loopback clients only.")
      end
      local token = (req.headers.authorization or ""):match("^[Bb]earer%s+(%S+)%s*$")
      if not token or not jwt.constant_time_equal(token, ctx.secret) then
        return server.error(401, "Unauthorized", "The admin API needs 'Authorization: Bearer <admin secret>'.",
          nil, { ["www-authenticate"] = 'Bearer realm="signalr-emulator-admin"' })
      end
      return handler(req)
    end
  end

  local routes = {}
  local function add(method, template, handler)
    routes[#routes + 1] = { method = method, template = template, handler = guard(handler), no_faults = true }
  end

  add("GET", "/admin/resources", function()
    local list = {}
    for _, svc in ipairs(ctx.services) do list[#list + 1] = resource_view(svc) end
    return server.json(200, { resources = json.array(list) })
  end)

  add("POST", "/admin/resources/{name}/local-auth", function(req)
    local svc = by_name[req.params.name:lower()]
    if not svc then return server.error(404, "NotFound", "No resource with that name.") end
    local body, e = body_object(req)
    if not body then return e end
    if type(body.enabled) ~= "boolean" then return bad("enabled must be true or false") end
    svc:set_local_auth(body.enabled)
    return server.json(200, resource_view(svc))
  end)

  add("GET", "/admin/role-assignments", function()
    if not ctx.authz then return server.error(501, "NotImplemented", "RBAC is not available.") end
    return server.json(200, { role_assignments = json.array(ctx.authz:list_assignments()) })
  end)

  add("POST", "/admin/role-assignments", function(req)
    if not ctx.authz then return server.error(501, "NotImplemented", "RBAC is not available.") end
    local body, e = body_object(req)
    if not body then return e end
    local a, err = ctx.authz:add_assignment { principal_id = body.principal_id, role = body.role, scope = body.scope }
    if not a then return bad(tostring(err)) end
    return server.json(201, a)
  end)

  add("DELETE", "/admin/role-assignments/{id}", function(req)
    if not ctx.authz then return server.error(501, "NotImplemented", "RBAC is not available.") end
    local ok, err = ctx.authz:remove_assignment(req.params.id)
    if not ok then return server.error(404, "NotFound", tostring(err or "no such role assignment")) end
    return { status = 204, headers = {}, body = "" }
  end)

  add("GET", "/admin/clock", function()
    return server.json(200, { now = ctx.clock:now(), offset = ctx.clock.offset })
  end)

  add("POST", "/admin/clock", function(req)
    local body, e = body_object(req)
    if not body then return e end
    local now, err = ctx.clock:advance(body.advance)
    if not now then return bad(err) end
    return server.json(200, { now = now, offset = ctx.clock.offset })
  end)

  add("GET", "/admin/settings", function()
    return server.json(200, ctx.settings)
  end)

  add("PUT", "/admin/settings", function(req)
    local body, e = body_object(req)
    if not body then return e end
    local merged = {}
    for k, v in pairs(ctx.settings) do merged[k] = v end
    for k, v in pairs(body) do merged[k] = v end
    local checked, err = config.normalize_settings(merged)
    if not checked then return bad(err) end
    for k, v in pairs(checked) do ctx.settings[k] = v end
    return server.json(200, ctx.settings)
  end)

  add("POST", "/admin/tokens", function(req)
    local body, e = body_object(req)
    if not body then return e end
    if not ctx.idp then return server.error(501, "NotImplemented", "Microsoft Entra ID is not available.") end
    if type(body.tenant_id) ~= "string" or type(body.principal_id) ~= "string" then
      return bad("tenant_id and principal_id are required strings")
    end
    local token, err = ctx.idp:issue_token(body.tenant_id, body.principal_id)
    if not token then return server.error(404, "NotFound", tostring(err or "no such principal in that tenant")) end
    return server.json(200, { access_token = token, token_type = "Bearer" })
  end)

  add("GET", "/admin/faults", function()
    return server.json(200, { faults = json.array(ctx.faults:list()) })
  end)

  add("POST", "/admin/faults", function(req)
    local body, e = body_object(req)
    if not body then return e end
    local rule, err = ctx.faults:add(body)
    if not rule then return bad(err) end
    return server.json(201, rule)
  end)

  add("DELETE", "/admin/faults", function()
    ctx.faults:clear()
    return { status = 204, headers = {}, body = "" }
  end)

  add("GET", "/admin/counters", function()
    return server.json(200, ctx.counters:snapshot())
  end)

  add("DELETE", "/admin/counters", function()
    ctx.counters:reset()
    return { status = 204, headers = {}, body = "" }
  end)

  add("GET", "/admin/connections", function()
    local list = {}
    for _, svc in ipairs(ctx.services) do
      for _, c in ipairs(svc.hubs:all_connections()) do
        list[#list + 1] = { resource = svc.name, hub = c.hub, connection_id = c.id, user_id = c.user_id,
          groups = json.array(svc.hubs:connection_groups(c.hub, c)) }
      end
    end
    return server.json(200, { connections = json.array(list) })
  end)

  return routes
end

return M
