-- Hub state of one SignalR resource: connections, users, groups, and user-group
-- membership with ttl on the emulator clock. Hub keys are lower-case and carry the
-- application prefix ("app_hub"), as the service keys them.
local M = {}

local YEAR = 365 * 86400
M.MAX_UNTIMED_GROUPS = 100   -- without ttl only the latest 100 groups per user are kept

local Hubs = {}
Hubs.__index = Hubs

function M.new(opts)
  return setmetatable({ clock = opts.clock, hubs = {}, seq = 0 }, Hubs)
end

function M.key(hub, application)
  if application and application ~= "" then
    return (application .. "_" .. hub):lower()
  end
  return hub:lower()
end

local function new_hub()
  return { connections = {}, users = {}, memberships = {} }
end

function Hubs:hub(key, create)
  local h = self.hubs[key]
  if not h and create then
    h = new_hub()
    self.hubs[key] = h
  end
  return h
end

-- conn: { id, user_id?, send = fn(message_table), close = fn(reason) , ... }
function Hubs:add_connection(key, conn)
  local h = self:hub(key, true)
  self.seq = self.seq + 1
  conn.seq = self.seq
  conn.hub = key
  conn.groups = conn.groups or {}
  conn.left = {}
  h.connections[conn.id] = conn
  if conn.user_id then
    local set = h.users[conn.user_id]
    if not set then set = {}; h.users[conn.user_id] = set end
    set[conn.id] = conn
  end
  return conn
end

function Hubs:remove_connection(key, id)
  local h = self.hubs[key]
  local conn = h and h.connections[id]
  if not conn then return nil end
  h.connections[id] = nil
  if conn.user_id and h.users[conn.user_id] then
    h.users[conn.user_id][id] = nil
    if next(h.users[conn.user_id]) == nil then h.users[conn.user_id] = nil end
  end
  return conn
end

function Hubs:connection(key, id)
  local h = self.hubs[key]
  return h and h.connections[id]
end

local function sorted(list)
  table.sort(list, function(a, b) return a.seq < b.seq end)
  return list
end

function Hubs:connections(key)
  local h, out = self.hubs[key], {}
  if h then
    for _, c in pairs(h.connections) do out[#out + 1] = c end
  end
  return sorted(out)
end

function Hubs:all_connections()
  local out = {}
  for _, h in pairs(self.hubs) do
    for _, c in pairs(h.connections) do out[#out + 1] = c end
  end
  return sorted(out)
end

function Hubs:user_connections(key, user)
  local h, out = self.hubs[key], {}
  local set = h and h.users[user]
  if set then
    for _, c in pairs(set) do out[#out + 1] = c end
  end
  return sorted(out)
end

-- The user's membership in group, if still alive on the emulator clock.
function Hubs:membership(key, user, group)
  local h = self.hubs[key]
  local groups = h and h.memberships[user]
  local m = groups and groups[group]
  if not m then return nil end
  if m.expires_at <= self.clock:now() then
    groups[group] = nil
    return nil
  end
  return m
end

local function in_group(self, key, conn, group)
  if conn.groups[group] then return true end
  if conn.left[group] or not conn.user_id then return false end
  return self:membership(key, conn.user_id, group) ~= nil
end

function Hubs:in_group(key, conn, group)
  return in_group(self, key, conn, group)
end

function Hubs:group_connections(key, group)
  local h, out = self.hubs[key], {}
  if h then
    for _, c in pairs(h.connections) do
      if in_group(self, key, c, group) then out[#out + 1] = c end
    end
  end
  return sorted(out)
end

-- Every group a connection is in now (direct or through its user).
function Hubs:connection_groups(key, conn)
  local out = {}
  for g in pairs(conn.groups) do out[g] = true end
  local h = self.hubs[key]
  local groups = h and conn.user_id and h.memberships[conn.user_id]
  if groups then
    for g in pairs(groups) do
      if not conn.left[g] and self:membership(key, conn.user_id, g) then out[g] = true end
    end
  end
  local list = {}
  for g in pairs(out) do list[#list + 1] = g end
  table.sort(list)
  return list
end

function Hubs:group_exists(key, group)
  return #self:group_connections(key, group) > 0
end

function Hubs:user_exists(key, user)
  local h = self.hubs[key]
  return h ~= nil and h.users[user] ~= nil
end

function Hubs:add_to_group(key, group, id)
  local conn = self:connection(key, id)
  if not conn then return false end
  conn.groups[group] = true
  conn.left[group] = nil
  return true
end

-- Returns false when the connection does not exist or was not in the group.
function Hubs:remove_from_group(key, group, id)
  local conn = self:connection(key, id)
  if not conn or not in_group(self, key, conn, group) then return false end
  conn.groups[group] = nil
  if conn.user_id and self:membership(key, conn.user_id, group) then conn.left[group] = true end
  return true
end

function Hubs:remove_from_all_groups(key, id)
  local conn = self:connection(key, id)
  if not conn then return false end
  for _, g in ipairs(self:connection_groups(key, conn)) do
    self:remove_from_group(key, g, id)
  end
  return true
end

-- ttl nil: a year, and only the latest 100 such groups per user; ttl 0: only the user's
-- connections that are connected now join; ttl > 0: the membership lives ttl seconds.
function Hubs:add_user_to_group(key, user, group, ttl)
  local h = self:hub(key, true)
  local now = self.clock:now()
  for _, c in ipairs(self:user_connections(key, user)) do
    c.left[group] = nil
    if ttl == 0 then c.groups[group] = true end
  end
  if ttl == 0 then return true end
  local groups = h.memberships[user]
  if not groups then groups = {}; h.memberships[user] = groups end
  self.seq = self.seq + 1
  groups[group] = { expires_at = now + (ttl or YEAR), untimed = ttl == nil, updated = self.seq }
  if ttl == nil then
    local untimed = {}
    for g, m in pairs(groups) do
      if m.untimed then untimed[#untimed + 1] = { g = g, updated = m.updated } end
    end
    if #untimed > M.MAX_UNTIMED_GROUPS then
      table.sort(untimed, function(a, b) return a.updated < b.updated end)
      for i = 1, #untimed - M.MAX_UNTIMED_GROUPS do groups[untimed[i].g] = nil end
    end
  end
  return true
end

function Hubs:remove_user_from_group(key, user, group)
  local h = self.hubs[key]
  if not h then return false end
  local groups = h.memberships[user]
  if groups then groups[group] = nil end
  for _, c in ipairs(self:user_connections(key, user)) do
    c.groups[group] = nil
    c.left[group] = nil
  end
  return true
end

function Hubs:remove_user_from_all_groups(key, user)
  local h = self.hubs[key]
  if not h then return false end
  h.memberships[user] = nil
  for _, c in ipairs(self:user_connections(key, user)) do
    c.groups = {}
    c.left = {}
  end
  return true
end

-- True when the user's membership is alive, or one of the user's connections is in the
-- group now (ttl=0 adds connections without a membership).
function Hubs:user_in_group(key, user, group)
  if self:membership(key, user, group) then return true end
  for _, c in ipairs(self:user_connections(key, user)) do
    if c.groups[group] then return true end
  end
  return false
end

return M
