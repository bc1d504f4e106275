-- Every data-plane REST operation of a SignalR resource: the api-version paths
-- (/api/hubs/...?api-version=...), the same paths under /api/v1/, and the legacy v1 paths.
-- Order of checks, as on the service: route and api-version, then authorization, then
-- parameter validation, then the operation on hub state.
local server = require "signalr.emulator.server"
local json = require "signalr.emulator.json"
local hubs_mod = require "signalr.emulator.hubs"
local odata = require "signalr.emulator.odata"
local msgpack = require "signalr.emulator.msgpack"

local M = {}

local ALL = { "2022-06-01", "2023-07-01", "2024-01-01", "2024-12-01" }
local SINCE_2023 = { "2023-07-01", "2024-01-01", "2024-12-01" }
local ONLY_2024_12 = { "2024-12-01" }
M.API_VERSIONS = ALL

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

-------------------------------------------------------------------------------
-- helpers

local function q1(req, name)
  local v = req.query[name:lower()]
  return v and v[#v]
end

local function err(status, code, message, target)
  return server.error(status, code, message, target)
end

local function bad(message, target)
  return err(400, "InvalidArgument", message, target)
end

-- 404 with x-ms-error-code (HEAD answers carry no body).
local function not_found(code, message)
  return server.error(404, code, message, nil, { ["x-ms-error-code"] = code })
end

local function status_only(status)
  return { status = status, headers = {}, body = "" }
end

local HUB_CHARS = "^[A-Za-z][A-Za-z0-9_`,%.%[%]]*$"
function M.valid_hub(name)
  return type(name) == "string" and #name >= 1 and #name <= 128 and name:match(HUB_CHARS) ~= nil
end

function M.valid_group(name)
  return type(name) == "string" and #name >= 1 and #name <= 1024 and name:match("^%s+$") == nil
end

local INVALID_HUB = "Invalid hub name. Valid hub name should be in between 1 and 128 characters long. " ..
  "The first character must be a letter, other characters can be letters, digits or the following symbols _`,.[]"
local INVALID_APP = "Invalid value of 'application'. Valid application name should be in between 1 and 128 " ..
  "characters long. The first character must be a letter, other characters can be letters, digits or the " ..
  "following symbols _`,.[]"
local INVALID_GROUP = "Invalid group name. Valid group name should be in between 1 and 1024 characters long."

-- Validates hub, application and group (when present); returns hub key | nil, response.
local function hub_key(req)
  local hub = req.params.hub
  if not M.valid_hub(hub) then return nil, bad(INVALID_HUB, "hub") end
  local app = q1(req, "application")
  if app ~= nil and not M.valid_hub(app) then return nil, bad(INVALID_APP, "application") end
  if req.params.group ~= nil and not M.valid_group(req.params.group) then
    return nil, bad(INVALID_GROUP, "group")
  end
  if req.params.user ~= nil and req.params.user == "" then return nil, bad("Invalid user id.", "user") end
  return hubs_mod.key(hub, app)
end

local function excluded_set(req)
  local set = {}
  for _, id in ipairs(req.query.excluded or {}) do set[id] = true end
  return set
end

-- Parses a PayloadMessage (JSON or MessagePack) into the invocation text the JSON hub
-- protocol carries. Returns { target, arguments_json } | nil, response.
function M.parse_payload(req)
  local body = req.body or ""
  if body:match("^%s*$") then return nil, bad("Message in request body is required.", "message") end
  local ctype = (req.headers["content-type"] or "application/json"):lower()
  local target, args
  if ctype:find("msgpack", 1, true) or ctype:find("octet-stream", 1, true) then
    local value = msgpack.decode(body)
    if type(value) ~= "table" then return nil, bad("Body is not a MessagePack map.", "message") end
    for k, v in pairs(value) do
      if type(k) == "string" and k:lower() == "target" then target = v end
      if type(k) == "string" and k:lower() == "arguments" then args = v end
    end
    if args ~= nil and getmetatable(args) ~= json.array_mt then
      return nil, bad("'arguments' must be an array.", "arguments")
    end
    if type(target) ~= "string" or target == "" then
      return nil, bad("The 'target' field is required.", "target")
    end
    local ok, text = pcall(json.encode, json.array(args or {}))
    if not ok then return nil, bad("'arguments' cannot be carried as JSON: " .. text, "arguments") end
    return { target = target, arguments = text }
  end
  local value, derr = json.decode(body)
  if type(value) ~= "table" or body:match("^%s*%[") then
    return nil, bad("Body is not a JSON object" .. (derr and (": " .. derr) or "."), "message")
  end
  local raw = json.raw_members(body) or {}
  for k, v in pairs(raw) do
    local lk = k:lower()
    if lk == "target" then target = value[k] end
    if lk == "arguments" then args = v end
  end
  if type(target) ~= "string" or target == "" then
    return nil, bad("The 'target' field is required.", "target")
  end
  if args ~= nil and args ~= "null" and not args:match("^%[") then
    return nil, bad("'arguments' must be an array.", "arguments")
  end
  if args == "null" then args = nil end
  return { target = target, arguments = args or "[]" }
end

function M.invocation_text(payload, invocation_id)
  return '{"type":1,' .. (invocation_id and ('"invocationId":' .. json.encode(invocation_id) .. ",") or "") ..
    '"target":' .. json.encode(payload.target) .. ',"arguments":' .. payload.arguments .. "}"
end

local function send_all(conns, text, excluded)
  for _, c in ipairs(conns) do
    if not (excluded and excluded[c.id]) then c.send(text) end
  end
end

local function close_all(svc, key, conns, excluded, reason)
  for _, c in ipairs(conns) do
    if not (excluded and excluded[c.id]) then
      svc.hubs:remove_connection(key, c.id)
      c.close(reason)
    end
  end
end

-------------------------------------------------------------------------------
-- operations: each is fn(svc, req, key) -> response

local ops = {}

function ops.broadcast(svc, req, key)
  local payload, e = M.parse_payload(req)
  if not payload then return e end
  send_all(svc.hubs:connections(key), M.invocation_text(payload), excluded_set(req))
  return status_only(202)
end

function ops.send_user(svc, req, key)
  local payload, e = M.parse_payload(req)
  if not payload then return e end
  send_all(svc.hubs:user_connections(key, req.params.user), M.invocation_text(payload))
  return status_only(202)
end

function ops.send_group(svc, req, key)
  local payload, e = M.parse_payload(req)
  if not payload then return e end
  send_all(svc.hubs:group_connections(key, req.params.group), M.invocation_text(payload), excluded_set(req))
  return status_only(202)
end

function ops.send_connection(svc, req, key)
  local payload, e = M.parse_payload(req)
  if not payload then return e end
  local c = svc.hubs:connection(key, req.params.connectionId)
  if c then c.send(M.invocation_text(payload)) end
  return status_only(202)
end

function ops.close_all(svc, req, key)
  close_all(svc, key, svc.hubs:connections(key), excluded_set(req), q1(req, "reason"))
  return status_only(204)
end

function ops.close_user(svc, req, key)
  close_all(svc, key, svc.hubs:user_connections(key, req.params.user), excluded_set(req), q1(req, "reason"))
  return status_only(204)
end

function ops.close_group(svc, req, key)
  close_all(svc, key, svc.hubs:group_connections(key, req.params.group), excluded_set(req), q1(req, "reason"))
  return status_only(204)
end

local function close_connection(status)
  return function(svc, req, key)
    local c = svc.hubs:connection(key, req.params.connectionId)
    if c then close_all(svc, key, { c }, nil, q1(req, "reason")) end
    return status_only(status)
  end
end

function ops.connection_exists(svc, req, key)
  if svc.hubs:connection(key, req.params.connectionId) then return status_only(200) end
  return not_found("Warning.Connection.NotExisted", "The connection does not exist.")
end

function ops.user_exists(svc, req, key)
  if svc.hubs:user_exists(key, req.params.user) then return status_only(200) end
  return not_found("Warning.User.NotExisted", "The user has no connection.")
end

function ops.group_exists(svc, req, key)
  if svc.hubs:group_exists(key, req.params.group) then return status_only(200) end
  return not_found("Warning.Group.NotExisted", "The group has no connection.")
end

function ops.add_connection_to_group(svc, req, key)
  if svc.hubs:add_to_group(key, req.params.group, req.params.connectionId) then return status_only(200) end
  return not_found("Error.Connection.NotExisted", "The connection does not exist.")
end

function ops.remove_connection_from_group(svc, req, key)
  if svc.hubs:remove_from_group(key, req.params.group, req.params.connectionId) then return status_only(200) end
  return not_found("Error.Connection.NotExisted", "The connection does not exist or is not in the group.")
end

function ops.remove_connection_from_all_groups(svc, req, key)
  svc.hubs:remove_from_all_groups(key, req.params.connectionId)
  return status_only(200)
end

local function add_user_to_group(status)
  return function(svc, req, key)
    local ttl = q1(req, "ttl")
    if ttl ~= nil then
      ttl = tonumber(ttl)
      if not ttl or ttl ~= math.floor(ttl) or ttl < 0 or ttl > 2147483647 then
        return bad("ttl must be an integer number of seconds >= 0.", "ttl")
      end
      ttl = math.tointeger(ttl)
    end
    svc.hubs:add_user_to_group(key, req.params.user, req.params.group, ttl)
    return status_only(status)
  end
end

local function remove_user_from_group(status)
  return function(svc, req, key)
    svc.hubs:remove_user_from_group(key, req.params.user, req.params.group)
    return status_only(status)
  end
end

local function remove_user_from_all_groups(status)
  return function(svc, req, key)
    svc.hubs:remove_user_from_all_groups(key, req.params.user)
    return status_only(status)
  end
end

function ops.user_in_group(svc, req, key)
  if svc.hubs:user_in_group(key, req.params.user, req.params.group) then return status_only(200) end
  return not_found("Info.User.NotInGroup", "The user is not in the group.")
end

local function int_param(req, name, lo, hi)
  local v = q1(req, name)
  if v == nil then return nil end
  local n = math.tointeger(tonumber(v))
  if not n or n < lo or n > hi then
    return false, bad(("%s must be an integer between %d and %d."):format(name, lo, hi), name)
  end
  return n
end

function ops.generate_token(svc, req, key)
  local minutes, e = int_param(req, "minutesToExpire", 1, 60 * 24 * 365)
  if minutes == false then return e end
  local user = q1(req, "userId")
  local token = svc:sign_client_token(key, user, req.query.role, req.query.group, (minutes or 60) * 60)
  return server.json(200, { token = token })
end

function ops.list_group_connections(svc, req, key)
  local page, e = int_param(req, "maxpagesize", 1, 200)
  if page == false then return e end
  local top
  top, e = int_param(req, "top", 1, 2147483647)
  if top == false then return e end
  page = page or 200
  local after = 0
  local cont = q1(req, "continuationToken")
  if cont ~= nil then
    after = math.tointeger(tonumber(cont))
    if not after or after < 0 then return bad("Invalid continuationToken.", "continuationToken") end
  end
  local limit = math.min(page, top or math.huge)
  local value, last, more = {}, nil, false
  for _, c in ipairs(svc.hubs:group_connections(key, req.params.group)) do
    if c.seq > after then
      if #value >= limit then more = true break end
      value[#value + 1] = { connectionId = c.id, userId = c.user_id }
      last = c.seq
    end
  end
  local result = { value = json.array(value) }
  local remaining = top and (top - #value)
  if more and last and (not remaining or remaining > 0) then
    local parts = {}
    for name, values in pairs(req.query) do
      if name ~= "continuationtoken" and name ~= "top" then
        for _, v in ipairs(values) do
          parts[#parts + 1] = server.percent_encode(name) .. "=" .. server.percent_encode(v)
        end
      end
    end
    if remaining then parts[#parts + 1] = "top=" .. remaining end
    parts[#parts + 1] = "continuationToken=" .. last
    table.sort(parts)
    result.nextLink = req.scheme .. "://" .. req.host .. req.raw_path .. "?" .. table.concat(parts, "&")
  end
  return server.json(200, result)
end

function ops.invoke(svc, req, key)
  local payload, e = M.parse_payload(req)
  if not payload then return e end
  local c = svc.hubs:connection(key, req.params.connectionId)
  if not c then return not_found("Error.Connection.NotExisted", "The connection does not exist.") end
  local result = c.invoke(payload, svc.settings.invoke_timeout)
  if result.timeout then
    return err(408, "InvocationTimeout", "The client did not answer the invocation in time.")
  elseif result.closed then
    return not_found("Error.Connection.NotExisted", "The connection closed before it answered.")
  elseif result.error then
    return err(400, "InvocationFailed", "The client returned an error: " .. tostring(result.error))
  end
  return server.json(200, { result = json.raw(result.result or "null") })
end

local COMMAND_ACTIONS = {
  SendMessage = "hub/send/action", JoinGroup = "group/write",
  LeaveGroup = "group/write", CloseConnection = "clientConnection/write",
}

local function parse_commands(req)
  local list = json.decode(req.body or "")
  if type(list) ~= "table" or not (req.body or ""):match("^%s*%[") then
    return nil, bad("Body must be a JSON array of commands.", "commands")
  end
  local commands = {}
  for i, cmd in ipairs(list) do
    if type(cmd) ~= "table" or not COMMAND_ACTIONS[cmd.type] then
      return nil, bad(("commands[%d].type must be SendMessage, JoinGroup, LeaveGroup or CloseConnection.")
        :format(i - 1), "type")
    end
    local c = { type = cmd.type, reason = cmd.reason }
    if cmd.type == "SendMessage" then
      local msg = cmd.message
      if type(msg) ~= "table" or type(msg.target) ~= "string" or msg.target == "" then
        return nil, bad(("commands[%d].message.target is required."):format(i - 1), "message")
      end
      local ok, text = pcall(json.encode, json.array(type(msg.arguments) == "table" and msg.arguments or {}))
      if not ok then return nil, bad(text, "arguments") end
      c.payload = { target = msg.target, arguments = text }
    elseif cmd.type ~= "CloseConnection" then
      if not M.valid_group(cmd.group) then return nil, bad(INVALID_GROUP, "group") end
      c.group = cmd.group
    end
    commands[#commands + 1] = c
  end
  return commands
end

function ops.execute(svc, req, key, commands)
  local filter, ferr = odata.parse(q1(req, "filter"))
  if not filter and ferr then return bad("Invalid filter: " .. ferr, "filter") end
  for _, c in ipairs(svc.hubs:connections(key)) do
    local ctx = { userId = c.user_id, connectionId = c.id, groups = svc.hubs:connection_groups(key, c) }
    if not filter or odata.eval(filter, ctx) then
      for _, cmd in ipairs(commands) do
        if cmd.type == "SendMessage" then c.send(M.invocation_text(cmd.payload))
        elseif cmd.type == "JoinGroup" then svc.hubs:add_to_group(key, cmd.group, c.id)
        elseif cmd.type == "LeaveGroup" then svc.hubs:remove_from_group(key, cmd.group, c.id)
        elseif svc.hubs:connection(key, c.id) then close_all(svc, key, { c }, nil, cmd.reason)
        end
      end
    end
  end
  return status_only(202)
end

-------------------------------------------------------------------------------
-- route table

-- { method(s), sub-path under the hub, operation, data action, versions, v1-prefixed too }
local HUB_OPS = {
  { "POST", "/:send", ops.broadcast, "hub/send/action" },
  { "POST", "/users/{user}/:send", ops.send_user, "user/send/action" },
  { "POST", "/groups/{group}/:send", ops.send_group, "group/send/action" },
  { "POST", "/connections/{connectionId}/:send", ops.send_connection, "clientConnection/send/action" },
  { "POST", "/:closeConnections", ops.close_all, "clientConnection/write" },
  { "POST", "/users/{user}/:closeConnections", ops.close_user, "clientConnection/write" },
  { "POST", "/groups/{group}/:closeConnections", ops.close_group, "clientConnection/write" },
  { "DELETE", "/connections/{connectionId}", close_connection(200), "clientConnection/write", nil, "v1:202" },
  { "HEAD", "/connections/{connectionId}", ops.connection_exists, "clientConnection/read" },
  { "HEAD", "/users/{user}", ops.user_exists, "user/read" },
  { "HEAD", "/groups/{group}", ops.group_exists, "group/read" },
  { "PUT", "/groups/{group}/connections/{connectionId}", ops.add_connection_to_group, "group/write" },
  { "DELETE", "/groups/{group}/connections/{connectionId}", ops.remove_connection_from_group, "group/write" },
  { "DELETE", "/connections/{connectionId}/groups", ops.remove_connection_from_all_groups, "group/write" },
  { "PUT", "/users/{user}/groups/{group}", add_user_to_group(200), "user/write" },
  { "DELETE", "/users/{user}/groups/{group}", remove_user_from_group(204), "user/write" },
  { { "HEAD", "GET" }, "/users/{user}/groups/{group}", ops.user_in_group, "group/read" },
  { "DELETE", "/users/{user}/groups", remove_user_from_all_groups(204), "user/write", nil, "v1:200" },
  { "POST", "/:generateToken", ops.generate_token, "auth/clientToken/action", SINCE_2023 },
  { "GET", "/groups/{group}/connections", ops.list_group_connections, "group/read", ONLY_2024_12 },
  { "POST", "/connections/{connectionId}/:invoke", ops.invoke, "clientConnection/send/action", ONLY_2024_12 },
  { "POST", "/:execute", ops.execute, nil, SINCE_2023 },
}

-- Legacy v1 paths (docs/swagger/v1.json): same operations, older shapes and statuses.
local V1_OPS = {
  { "POST", "", ops.broadcast, "hub/send/action" },
  { "POST", "/users/{user}", ops.send_user, "user/send/action" },
  { "POST", "/connections/{connectionId}", ops.send_connection, "clientConnection/send/action" },
  { "GET", "/connections/{connectionId}", ops.connection_exists, "clientConnection/read" },
  { "POST", "/groups/{group}", ops.send_group, "group/send/action" },
  { "GET", "/groups/{group}", ops.group_exists, "group/read" },
  { "GET", "/users/{user}", ops.user_exists, "user/read" },
  { { "GET", "HEAD" }, "/groups/{group}/users/{user}", ops.user_in_group, "group/read" },
  { "PUT", "/groups/{group}/users/{user}", add_user_to_group(202), "user/write" },
  { "DELETE", "/groups/{group}/users/{user}", remove_user_from_group(202), "user/write" },
}

local function check_version(req, versions)
  local v = req.query["api-version"]
  if not v then
    return err(400, "MissingApiVersion", "The api-version query parameter is required. Supported: " ..
      table.concat(versions.list, ", ") .. ".", "api-version")
  end
  if #v ~= 1 or not versions.set[v[1]] then
    return err(400, "UnsupportedApiVersion", "The api-version is not supported by this operation. Supported: " ..
      table.concat(versions.list, ", ") .. ".", "api-version")
  end
end

local function make_handler(svc, op, action, versions)
  return function(req)
    if versions then
      local e = check_version(req, versions)
      if e then return e end
    end
    local commands
    if op == ops.execute then
      -- the data actions depend on the commands in the body
      local e
      commands, e = parse_commands(req)
      if not commands then
        local _, deny = svc:authorize(req, "hub/send/action")
        return deny or e
      end
      local needed, seen = {}, {}
      for _, c in ipairs(commands) do
        local a = COMMAND_ACTIONS[c.type]
        if not seen[a] then seen[a] = true; needed[#needed + 1] = a end
      end
      if #needed == 0 then needed[1] = "hub/send/action" end
      for _, a in ipairs(needed) do
        local ok, deny = svc:authorize(req, a)
        if not ok then return deny end
      end
    else
      local ok, deny = svc:authorize(req, action)
      if not ok then return deny end
    end
    local key, bad_res = hub_key(req)
    if not key then return bad_res end
    return op(svc, req, key, commands)
  end
end

function M.routes(svc)
  local routes = {}
  local function add(method, template, handler)
    routes[#routes + 1] = { method = method, template = template, handler = handler }
  end
  for _, def in ipairs(HUB_OPS) do
    local method, sub, op, action, versions, v1 = def[1], def[2], def[3], def[4], def[5] or ALL, def[6]
    add(method, "/api/hubs/{hub}" .. sub, make_handler(svc, op, action, { list = versions, set = set_of(versions) }))
    local v1_op = op
    if v1 == "v1:202" then v1_op = close_connection(202) end
    if v1 == "v1:200" then v1_op = remove_user_from_all_groups(200) end
    add(method, "/api/v1/hubs/{hub}" .. sub, make_handler(svc, v1_op, action, nil))
  end
  for _, def in ipairs(V1_OPS) do
    add(def[1], "/api/v1/hubs/{hub}" .. def[2], make_handler(svc, def[3], def[4], nil))
  end
  return routes
end

M.ops = ops
return M
