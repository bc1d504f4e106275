-- Azure RBAC for the data plane: built-in and custom role definitions (dataActions,
-- notDataActions, `*` wildcards, case-insensitive), assignments at resource, resource
-- group, subscription and management group scope with inheritance, to users, groups
-- (transitively), service principals and managed identities.
local directory = require "signalr.emulator.directory"

local format, concat = string.format, table.concat

local M = {}

M.PREFIX = "Microsoft.SignalRService/SignalR/"
local DEF_PREFIX = "/providers/Microsoft.Authorization/roleDefinitions/"

-- Built-in roles with their real ids (Azure built-in roles reference). The generic
-- Owner/Contributor/Reader carry no dataActions: on Azure they do not open the data plane.
M.BUILTIN_ROLES = {
  { id = "420fcaa2-552c-430f-98ca-3264be4806c7", name = "SignalR App Server",
    data_actions = { M.PREFIX .. "auth/accessKey/action", M.PREFIX .. "serverConnection/write",
      M.PREFIX .. "clientConnection/write" } },
  { id = "7e4f1700-ea5a-4f59-8f37-079cfe29dce3", name = "SignalR Service Owner",
    data_actions = { M.PREFIX .. "*" } },
  { id = "fd53cd77-2268-407a-8f46-7e7863d0f521", name = "SignalR REST API Owner",
    former_names = { "SignalR Serverless Contributor" },
    data_actions = { M.PREFIX .. "auth/clientToken/action", M.PREFIX .. "hub/*", M.PREFIX .. "group/*",
      M.PREFIX .. "clientConnection/*", M.PREFIX .. "user/*" } },
  { id = "ddde6b66-c0df-4114-a159-3618637b3035", name = "SignalR REST API Reader",
    former_names = { "SignalR Service Reader" },
    data_actions = { M.PREFIX .. "group/read", M.PREFIX .. "clientConnection/read", M.PREFIX .. "user/read" } },
  { id = "8cf5e20a-e4b2-4e9d-b3a1-5ceb692c2761", name = "SignalR/Web PubSub Contributor", data_actions = {} },
  { id = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", name = "Owner", data_actions = {} },
  { id = "b24988ac-6180-42a0-ab88-20f7382dd24c", name = "Contributor", data_actions = {} },
  { id = "acdd72a7-3385-48ef-bd42-f606fba81ae7", name = "Reader", data_actions = {} },
}

---------------------------------------------------------------------------------------
-- scopes
---------------------------------------------------------------------------------------
local GUID_PAT = "%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x"
local NAME = "[%w%-%._%(%)]+"

-- Parses a scope or resource id: { kind, subscription, resource_group, management_group,
-- normalized } or nil, reason. kind: "resource" | "resource_group" | "subscription" |
-- "management_group". Azure resource ids are case-insensitive: normalized is lower-case.
function M.parse_scope(scope)
  if type(scope) ~= "string" or scope == "" then return nil, "scope must be a non-empty string" end
  local s = scope:gsub("/+$", "")
  local lower = s:lower()
  local mg = lower:match("^/providers/microsoft%.management/managementgroups/(" .. NAME .. ")$")
  if mg then return { kind = "management_group", management_group = mg, normalized = lower } end
  local sub = lower:match("^/subscriptions/(" .. GUID_PAT .. ")$")
  if sub then return { kind = "subscription", subscription = sub, normalized = lower } end
  local rg
  sub, rg = lower:match("^/subscriptions/(" .. GUID_PAT .. ")/resourcegroups/(" .. NAME .. ")$")
  if sub then return { kind = "resource_group", subscription = sub, resource_group = rg, normalized = lower } end
  sub, rg = lower:match("^/subscriptions/(" .. GUID_PAT .. ")/resourcegroups/(" .. NAME .. ")/providers/[%w%.]+/.+$")
  if sub then return { kind = "resource", subscription = sub, resource_group = rg, normalized = lower } end
  return nil, "not a resource, resource group, subscription or management group scope"
end

---------------------------------------------------------------------------------------
-- wildcard actions
---------------------------------------------------------------------------------------
local function compile_action(pattern)
  local lower = pattern:lower()
  local lua = "^" .. lower:gsub("[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0"):gsub("%*", ".*") .. "$"
  return { text = pattern, lua = lua }
end

local function matches_any(compiled, action)
  for _, c in ipairs(compiled) do
    if action:find(c.lua) then return c.text end
  end
  return nil
end

local function full_action(action)
  if action:lower():find("^microsoft%.") then return action end
  return M.PREFIX .. action
end

---------------------------------------------------------------------------------------
-- construction
---------------------------------------------------------------------------------------
local Authz = {}
Authz.__index = Authz

local Invalid = {}
local function fail(msg) error(setmetatable({ msg = msg }, Invalid), 0) end

local function string_list(v, path)
  if v == nil then return {} end
  if type(v) ~= "table" then fail(path .. ": must be a list of strings") end
  for i, s in ipairs(v) do
    if type(s) ~= "string" or s == "" then fail(path .. "[" .. i .. "]: must be a non-empty string") end
  end
  return v
end

function Authz:add_role(def, path)
  local role = {
    id = def.id:lower(), name = def.name, former_names = def.former_names or {}, custom = def.custom,
    data_actions = {}, not_data_actions = {}, assignable_scopes = def.assignable_scopes or {},
  }
  for _, a in ipairs(def.data_actions) do role.data_actions[#role.data_actions + 1] = compile_action(a) end
  for _, a in ipairs(def.not_data_actions or {}) do
    role.not_data_actions[#role.not_data_actions + 1] = compile_action(a)
  end
  for _, n in ipairs { role.name, table.unpack(role.former_names) } do
    local key = n:lower()
    if self.roles_by_name[key] then fail(path .. ": role name '" .. n .. "' is already taken") end
    self.roles_by_name[key] = role
  end
  if self.roles_by_id[role.id] then fail(path .. ": role id " .. role.id .. " is already taken") end
  self.roles_by_id[role.id] = role
  self.roles[#self.roles + 1] = role
  return role
end

local function custom_role(spec, path)
  if type(spec) ~= "table" then fail(path .. ": must be an object") end
  local name = spec.name or spec.roleName
  if type(name) ~= "string" or name == "" then fail(path .. ".name: is required") end
  local data = string_list(spec.data_actions or spec.dataActions, path .. ".data_actions")
  local not_data = string_list(spec.not_data_actions or spec.notDataActions, path .. ".not_data_actions")
  if spec.permissions ~= nil then
    if type(spec.permissions) ~= "table" then fail(path .. ".permissions: must be a list") end
    for i, p in ipairs(spec.permissions) do
      local pp = path .. ".permissions[" .. i .. "]"
      for _, a in ipairs(string_list(p.dataActions or p.data_actions, pp .. ".dataActions")) do data[#data + 1] = a end
      for _, a in ipairs(string_list(p.notDataActions or p.not_data_actions, pp .. ".notDataActions")) do
        not_data[#not_data + 1] = a
      end
    end
  end
  if #data == 0 then fail(path .. ".data_actions: a custom role needs at least one data action") end
  local id = spec.id
  if id ~= nil then
    id = type(id) == "string" and (id:match("(" .. GUID_PAT .. ")$") or id)
    if not directory.is_guid(id) then fail(path .. ".id: must be a GUID") end
  else
    id = directory.derived_guid("role", name)
  end
  local scopes = string_list(spec.assignable_scopes or spec.assignableScopes, path .. ".assignable_scopes")
  for i, s in ipairs(scopes) do
    if s ~= "/" and not M.parse_scope(s) then fail(path .. ".assignable_scopes[" .. i .. "]: not a valid scope") end
  end
  return { id = id, name = name, data_actions = data, not_data_actions = not_data, assignable_scopes = scopes,
    custom = true }
end

local function build_management_groups(self, groups)
  for i, g in ipairs(groups) do
    local path = "management_groups[" .. i .. "]"
    if type(g) ~= "table" then fail(path .. ": must be an object") end
    if type(g.id) ~= "string" or not g.id:match("^" .. NAME .. "$") then
      fail(path .. ".id: must be a management group name (letters, digits, - . _ ( ))")
    end
    local id = g.id:lower()
    if self.mgs[id] then fail(path .. ".id: duplicates another management group") end
    self.mgs[id] = { id = g.id, parent = g.parent and tostring(g.parent):lower(), path = path }
    for j, sub in ipairs(string_list(g.subscriptions, path .. ".subscriptions")) do
      if not directory.is_guid(sub) then fail(path .. ".subscriptions[" .. j .. "]: must be a subscription GUID") end
      if self.sub_mg[sub:lower()] then
        fail(path .. ".subscriptions[" .. j .. "]: subscription is already in management group "
          .. self.sub_mg[sub:lower()])
      end
      self.sub_mg[sub:lower()] = id
    end
  end
  for id, mg in pairs(self.mgs) do
    if mg.parent and not self.mgs[mg.parent] then fail(mg.path .. ".parent: no management group " .. mg.parent) end
    local seen, cur = { [id] = true }, mg.parent
    while cur do
      if seen[cur] then fail(mg.path .. ".parent: management groups form a cycle") end
      seen[cur] = true
      cur = self.mgs[cur].parent
    end
  end
end

-- opts: directory, config (reads management_groups, role_definitions, role_assignments).
-- Returns the authorizer or nil, "field: reason".
function M.new(opts)
  local config = opts.config or {}
  local self = setmetatable({ dir = opts.directory, roles = {}, roles_by_name = {}, roles_by_id = {},
    mgs = {}, sub_mg = {}, assignments = {}, by_id = {} }, Authz)
  local ok, err = pcall(function()
    for i, def in ipairs(M.BUILTIN_ROLES) do self:add_role(def, "built-in role " .. i) end
    for _, section in ipairs { "management_groups", "role_definitions", "role_assignments" } do
      local v = config[section]
      if v ~= nil and (type(v) ~= "table" or (next(v) ~= nil and v[1] == nil)) then
        fail(section .. ": must be a list")
      end
    end
    build_management_groups(self, config.management_groups or {})
    for i, spec in ipairs(config.role_definitions or {}) do
      local path = "role_definitions[" .. i .. "]"
      self:add_role(custom_role(spec, path), path)
    end
    for i, spec in ipairs(config.role_assignments or {}) do
      local path = "role_assignments[" .. i .. "]"
      if type(spec) ~= "table" then fail(path .. ": must be an object") end
      local a, aerr = self:add_assignment(spec)
      if not a then fail(path .. ": " .. aerr) end
    end
  end)
  if not ok then
    if getmetatable(err) == Invalid then return nil, err.msg end
    error(err, 0)
  end
  return self
end

function M.validate(config, dir)
  local authz, err = M.new { directory = dir or assert(directory.new(config)), config = config }
  if not authz then return nil, err end
  return true
end

---------------------------------------------------------------------------------------
-- roles, scopes and assignments
---------------------------------------------------------------------------------------

-- A role by name, former name (case-insensitive), id GUID or full role definition id.
function Authz:role(ref)
  if type(ref) ~= "string" then return nil end
  local by_name = self.roles_by_name[ref:lower()]
  if by_name then return by_name end
  local id = ref:lower():match("(" .. GUID_PAT .. ")$")
  return id and self.roles_by_id[id] or nil
end

function Authz:role_list()
  return self.roles
end

-- The scopes that contain `scope`, itself first, up to the management group root.
function Authz:scope_chain(scope)
  local p, err = M.parse_scope(scope)
  if not p then return nil, err end
  local chain = { p.normalized }
  local function add_mgs(mg)
    local seen = {}
    while mg and not seen[mg] do
      seen[mg] = true
      chain[#chain + 1] = "/providers/microsoft.management/managementgroups/" .. mg
      mg = self.mgs[mg] and self.mgs[mg].parent
    end
  end
  if p.kind == "management_group" then
    chain = {}
    add_mgs(p.management_group)
    return chain, p
  end
  if p.kind == "resource" then
    chain[#chain + 1] = format("/subscriptions/%s/resourcegroups/%s", p.subscription, p.resource_group)
  end
  if p.kind ~= "subscription" then chain[#chain + 1] = "/subscriptions/" .. p.subscription end
  add_mgs(self.sub_mg[p.subscription])
  return chain, p
end

local PRINCIPAL_TYPES = { service_principal = "ServicePrincipal", managed_identity = "ServicePrincipal",
  user = "User", group = "Group" }

local function copy_assignment(a)
  return { id = a.id, principal_id = a.principal_id, principal_type = a.principal_type,
    tenant_id = a.tenant_id, role = a.role.name, role_definition_id = DEF_PREFIX .. a.role.id,
    scope = a.scope }
end

-- spec: { principal_id, role (name | former name | id), scope, id? }.
-- Returns the assignment (plain table) or nil, reason.
function Authz:add_assignment(spec)
  if type(spec) ~= "table" then return nil, "an assignment must be an object" end
  local oid = spec.principal_id
  if not directory.is_guid(oid) then return nil, "principal_id: must be the object id (GUID) of a principal" end
  local obj = self.dir:object_anywhere(oid)
  if not obj then return nil, "principal_id: no user, group, service principal or managed identity " .. oid end
  local role = self:role(spec.role)
  if not role then return nil, "role: no role definition named or with id '" .. tostring(spec.role) .. "'" end
  local chain, parsed = self:scope_chain(spec.scope)
  if not chain then return nil, "scope: " .. tostring(spec.scope) .. " is " .. parsed end
  if parsed.kind == "management_group" and not self.mgs[parsed.management_group] then
    return nil, "scope: no management group " .. parsed.management_group
  end
  if #role.assignable_scopes > 0 then
    local allowed = false
    for _, s in ipairs(role.assignable_scopes) do
      local want = s == "/" and nil or M.parse_scope(s).normalized
      for _, c in ipairs(chain) do
        if want == nil or c == want then allowed = true end
      end
    end
    if not allowed then return nil, "scope: outside the assignable scopes of role '" .. role.name .. "'" end
  end
  local id = spec.id
  if id ~= nil and not directory.is_guid(id) then return nil, "id: must be a GUID" end
  id = (id or directory.random_guid()):lower()
  if self.by_id[id] then return nil, "id: a role assignment with this id already exists" end
  for _, a in ipairs(self.assignments) do
    if a.principal_id == obj.object_id and a.role == role and a.scope_key == chain[1] then
      return nil, "RoleAssignmentExists: the role assignment already exists (id " .. a.id .. ")"
    end
  end
  local a = { id = id, principal_id = obj.object_id, principal_type = PRINCIPAL_TYPES[obj.kind],
    tenant_id = obj.tenant.id, role = role, scope = spec.scope:gsub("/+$", ""), scope_key = chain[1] }
  self.assignments[#self.assignments + 1] = a
  self.by_id[id] = a
  return copy_assignment(a)
end

function Authz:remove_assignment(id)
  local a = type(id) == "string" and self.by_id[id:lower()]
  if not a then return nil, "no role assignment " .. tostring(id) end
  self.by_id[a.id] = nil
  for i, x in ipairs(self.assignments) do
    if x == a then table.remove(self.assignments, i) break end
  end
  return true
end

function Authz:list_assignments()
  local out = {}
  for i, a in ipairs(self.assignments) do out[i] = copy_assignment(a) end
  return out
end

---------------------------------------------------------------------------------------
-- the check
---------------------------------------------------------------------------------------

-- Names of the built-in roles that grant `action`, for hints in denials.
function Authz:roles_granting(action)
  local names = {}
  local lower = full_action(action):lower()
  for _, role in ipairs(self.roles) do
    if not role.custom and matches_any(role.data_actions, lower) and not matches_any(role.not_data_actions, lower) then
      names[#names + 1] = role.name
    end
  end
  return names
end

-- principal: the table entra's validate returns. action: a data action, full
-- ("Microsoft.SignalRService/SignalR/hub/send/action") or short ("hub/send/action").
-- Returns true or false, reason (names the data action and the principal).
function Authz:check(principal, resource_id, action)
  if type(principal) ~= "table" or type(principal.object_id) ~= "string" then
    return false, "no principal"
  end
  action = full_action(action)
  local lower = action:lower()
  local who = format("%s %s of tenant %s", (principal.kind or "principal"):gsub("_", " "), principal.object_id,
    tostring(principal.tenant_id))
  local chain, err = self:scope_chain(resource_id)
  if not chain then return false, "resource id " .. tostring(resource_id) .. " is " .. err end
  local in_chain = {}
  for _, c in ipairs(chain) do in_chain[c] = true end
  local ids = { [principal.object_id:lower()] = true }
  for _, g in ipairs(principal.group_ids or {}) do ids[g:lower()] = true end
  local excluded
  for _, a in ipairs(self.assignments) do
    if ids[a.principal_id] and in_chain[a.scope_key] and a.tenant_id == (principal.tenant_id or a.tenant_id) then
      local role = a.role
      if matches_any(role.data_actions, lower) then
        local denied_by = matches_any(role.not_data_actions, lower)
        if not denied_by then return true end
        excluded = excluded or format("role '%s' assigned at %s lists it in notDataActions (%s)", role.name,
          a.scope, denied_by)
      end
    end
  end
  local hint = self:roles_granting(action)
  local reason = format("%s is not allowed to perform %s on %s: ", who, action, resource_id)
  if excluded then
    reason = reason .. excluded
  else
    reason = reason .. "no role assignment at this scope or above grants it"
  end
  if #hint > 0 then reason = reason .. "; roles that grant it: " .. concat(hint, ", ") end
  return false, reason
end

return M
