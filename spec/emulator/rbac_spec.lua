-- rbac.lua: each built-in role at each of the four scopes, allowed and denied;
-- inheritance through management groups; groups; custom roles with notDataActions and
-- wildcards; cross-tenant principals; assignment and config validation.
local directory = require "signalr.emulator.directory"
local rbac = require "signalr.emulator.rbac"
local fx = require "spec.helpers.identity_fixtures"

local w, dir
local SUB, OTHER_SUB = "0b1f6471-1bf0-4dda-aec3-111122223333", "5d9a1c2e-0000-4b4b-9c9c-444455556666"
local RG = "/subscriptions/" .. SUB .. "/resourceGroups/signalr-rg"
local RESOURCE = RG .. "/providers/Microsoft.SignalRService/SignalR/chat"
local SIBLING = "/subscriptions/" .. SUB .. "/resourceGroups/other-rg/providers/Microsoft.SignalRService/SignalR/chat"
local FOREIGN = "/subscriptions/" .. OTHER_SUB
  .. "/resourceGroups/signalr-rg/providers/Microsoft.SignalRService/SignalR/x"
local MG_TEAM = "/providers/Microsoft.Management/managementGroups/team"
local MG_ROOT = "/providers/Microsoft.Management/managementGroups/root-mg"

local function config(extra)
  local c = { management_groups = {
    { id = "root-mg" },
    { id = "team", parent = "root-mg", subscriptions = { SUB } },
    { id = "elsewhere", parent = "root-mg", subscriptions = { OTHER_SUB } },
  } }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

local function new_authz(extra)
  return assert(rbac.new { directory = dir, config = config(extra) })
end

local function principal(tenant, oid)
  return dir:principal(assert(dir:object(tenant, oid)))
end

local function denied(authz, p, resource, action)
  local ok, reason = authz:check(p, resource, action)
  assert.is_false(ok)
  assert.is_string(reason)
  assert.matches(rbac.PREFIX:gsub("%p", "%%%0") .. action:gsub("%p", "%%%0"), reason)
  assert.matches(p.object_id:gsub("%p", "%%%0"), reason)
  return reason
end

setup(function()
  w = fx.world()
  dir = assert(directory.new(w.config))
end)

describe("built-in roles at every scope", function()
  local cases = {
    { role = "SignalR App Server", allow = { "auth/accessKey/action", "serverConnection/write",
      "clientConnection/write" }, deny = { "hub/send/action", "auth/clientToken/action", "group/read" } },
    { role = "SignalR Service Owner", allow = { "hub/send/action", "auth/accessKey/action", "user/write",
      "serverConnection/write" }, deny = {} },
    { role = "SignalR REST API Owner", allow = { "auth/clientToken/action", "hub/send/action", "group/write",
      "user/read", "clientConnection/send/action", "clientConnection/read" },
      deny = { "auth/accessKey/action", "serverConnection/write" } },
    { role = "SignalR REST API Reader", allow = { "group/read", "clientConnection/read", "user/read" },
      deny = { "group/write", "hub/send/action", "auth/accessKey/action", "clientConnection/write" } },
  }
  local scopes = { resource = RESOURCE, resource_group = RG, subscription = "/subscriptions/" .. SUB,
    management_group = MG_TEAM }

  for _, case in ipairs(cases) do
    for scope_kind, scope in pairs(scopes) do
      it(case.role .. " at " .. scope_kind .. " scope", function()
        local authz = new_authz()
        local p = principal(w.tenant_a, w.sp_server)
        for _, action in ipairs(case.allow) do denied(authz, p, RESOURCE, action) end
        local a = assert(authz:add_assignment { principal_id = w.sp_server, role = case.role, scope = scope })
        for _, action in ipairs(case.allow) do
          assert.is_true(authz:check(p, RESOURCE, action), action)
          assert.is_true(authz:check(p, RESOURCE, rbac.PREFIX .. action), action)
        end
        for _, action in ipairs(case.deny) do
          local reason = denied(authz, p, RESOURCE, action)
          assert.matches("roles that grant it", reason)
        end
        -- a resource outside the scope inherits nothing
        local outside = scope_kind == "resource" and SIBLING or scope_kind == "resource_group" and SIBLING
          or FOREIGN
        denied(authz, p, outside, case.allow[1])
        assert.is_true(authz:remove_assignment(a.id))
        denied(authz, p, RESOURCE, case.allow[1])
      end)
    end
  end

  it("grants through an ancestor management group and not a sibling one", function()
    local authz = new_authz()
    local p = principal(w.tenant_a, w.sp_server)
    assert(authz:add_assignment { principal_id = w.sp_server, role = "SignalR Service Owner", scope = MG_ROOT })
    assert.is_true(authz:check(p, RESOURCE, "hub/send/action"))
    assert.is_true(authz:check(p, FOREIGN, "hub/send/action"))
    local authz2 = new_authz()
    assert(authz2:add_assignment { principal_id = w.sp_server, role = "SignalR Service Owner",
      scope = "/providers/Microsoft.Management/managementGroups/elsewhere" })
    denied(authz2, p, RESOURCE, "hub/send/action")
    assert.is_true(authz2:check(p, FOREIGN, "hub/send/action"))
  end)

  it("resolves roles by former name, id and full definition id", function()
    local authz = new_authz()
    assert.equal("SignalR REST API Owner", authz:role("SignalR Serverless Contributor").name)
    assert.equal("SignalR REST API Reader", authz:role("signalr service reader").name)
    assert.equal("SignalR App Server", authz:role("420FCAA2-552C-430F-98CA-3264BE4806C7").name)
    assert.equal("SignalR Service Owner",
      authz:role("/subscriptions/" .. SUB .. "/providers/Microsoft.Authorization/roleDefinitions/"
        .. "7e4f1700-ea5a-4f59-8f37-079cfe29dce3").name)
    assert.equal("fd53cd77-2268-407a-8f46-7e7863d0f521", authz:role("SignalR REST API Owner").id)
    assert.equal("ddde6b66-c0df-4114-a159-3618637b3035", authz:role("SignalR REST API Reader").id)
    local a = assert(authz:add_assignment { principal_id = w.sp_server, role = "SignalR Serverless Contributor",
      scope = RESOURCE })
    assert.equal("SignalR REST API Owner", a.role)
    assert.equal("/providers/Microsoft.Authorization/roleDefinitions/fd53cd77-2268-407a-8f46-7e7863d0f521",
      a.role_definition_id)
  end)

  it("does not open the data plane to Owner, Contributor or Reader", function()
    local authz = new_authz()
    local p = principal(w.tenant_a, w.sp_server)
    for _, role in ipairs { "Owner", "Contributor", "Reader", "SignalR/Web PubSub Contributor" } do
      assert(authz:add_assignment { principal_id = w.sp_server, role = role, scope = RESOURCE })
    end
    denied(authz, p, RESOURCE, "hub/send/action")
    denied(authz, p, RESOURCE, "auth/accessKey/action")
  end)
end)

describe("principals", function()
  it("grants to users, nested group members and managed identities", function()
    local authz = new_authz()
    assert(authz:add_assignment { principal_id = w.group_outer, role = "SignalR REST API Owner", scope = RG })
    assert(authz:add_assignment { principal_id = w.uami_oid, role = "SignalR App Server", scope = RESOURCE })
    assert.is_true(authz:check(principal(w.tenant_a, w.user), RESOURCE, "hub/send/action"))
    assert.is_true(authz:check(principal(w.tenant_a, w.sp_server), RESOURCE, "hub/send/action"))
    denied(authz, principal(w.tenant_a, w.vm_oid), RESOURCE, "hub/send/action")
    local mi = principal(w.tenant_a, w.uami_oid)
    assert.is_true(authz:check(mi, RESOURCE, "auth/accessKey/action"))
    local reason = denied(authz, mi, RESOURCE, "hub/send/action")
    assert.matches("managed identity", reason)
    local list = authz:list_assignments()
    assert.equal(2, #list)
    assert.equal("Group", list[1].principal_type)
    assert.equal("ServicePrincipal", list[2].principal_type)
  end)

  it("keeps a principal to its tenant: a multitenant app's principals are distinct per tenant", function()
    local authz = new_authz()
    local home = dir:service_principal(dir:tenant(w.tenant_a), w.multi)
    local guest = principal(w.tenant_b, w.sp_multi_b)
    assert(authz:add_assignment { principal_id = home.object_id, role = "SignalR Service Owner", scope = RESOURCE })
    assert.is_true(authz:check(dir:principal(home), RESOURCE, "hub/send/action"))
    denied(authz, guest, RESOURCE, "hub/send/action")
    assert(authz:add_assignment { principal_id = w.sp_multi_b, role = "SignalR Service Owner", scope = RESOURCE })
    assert.is_true(authz:check(guest, RESOURCE, "hub/send/action"))
    -- a forged principal table claiming another tenant matches nothing
    local forged = dir:principal(home)
    forged.tenant_id = w.tenant_b
    denied(authz, forged, RESOURCE, "hub/send/action")
  end)
end)

describe("custom roles", function()
  local custom = {
    { name = "Sender Without Keys", data_actions = { "Microsoft.SignalRService/SignalR/*" },
      not_data_actions = { "Microsoft.SignalRService/SignalR/auth/*" } },
    { roleName = "Readers Of Everything", id = "3c8b2e0a-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
      permissions = { { dataActions = { "microsoft.signalrservice/signalr/*/READ" } } } },
    { name = "Scoped", data_actions = { "*" }, assignable_scopes = { RG } },
  }

  it("applies wildcards case-insensitively and subtracts notDataActions", function()
    local authz = new_authz { role_definitions = custom }
    local p = principal(w.tenant_a, w.sp_server)
    assert(authz:add_assignment { principal_id = w.sp_server, role = "sender without keys", scope = RG })
    assert.is_true(authz:check(p, RESOURCE, "hub/send/action"))
    assert.is_true(authz:check(p, RESOURCE, "microsoft.signalrservice/signalr/GROUP/write"))
    local reason = denied(authz, p, RESOURCE, "auth/accessKey/action")
    assert.matches("notDataActions", reason)
    assert.matches("Sender Without Keys", reason)
    -- another role's grant is not cancelled by this role's notDataActions
    assert(authz:add_assignment { principal_id = w.sp_server, role = "SignalR App Server", scope = RESOURCE })
    assert.is_true(authz:check(p, RESOURCE, "auth/accessKey/action"))
  end)

  it("matches a wildcard in the middle of an action", function()
    local authz = new_authz { role_definitions = custom }
    local p = principal(w.tenant_a, w.user)
    assert(authz:add_assignment { principal_id = w.user, role = "3c8b2e0a-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
      scope = "/subscriptions/" .. SUB })
    for _, a in ipairs { "group/read", "user/read", "clientConnection/read" } do
      assert.is_true(authz:check(p, RESOURCE, a))
    end
    denied(authz, p, RESOURCE, "group/write")
    denied(authz, p, RESOURCE, "auth/accessKey/action")
  end)

  it("keeps assignments within a custom role's assignable scopes", function()
    local authz = new_authz { role_definitions = custom }
    assert(authz:add_assignment { principal_id = w.sp_server, role = "Scoped", scope = RESOURCE })
    assert(authz:add_assignment { principal_id = w.user, role = "Scoped", scope = RG })
    local a, err = authz:add_assignment { principal_id = w.sp_server, role = "Scoped",
      scope = "/subscriptions/" .. SUB }
    assert.is_nil(a)
    assert.matches("assignable scopes", err)
  end)
end)

describe("assignments and config", function()
  it("validates assignments", function()
    local authz = new_authz()
    local function bad(spec, pattern)
      local a, err = authz:add_assignment(spec)
      assert.is_nil(a)
      assert.matches(pattern, err)
    end
    bad({ principal_id = "alice", role = "SignalR App Server", scope = RESOURCE }, "^principal_id: must be")
    bad({ principal_id = fx.uuid(), role = "SignalR App Server", scope = RESOURCE }, "^principal_id: no user")
    bad({ principal_id = w.sp_server, role = "SignalR Admin", scope = RESOURCE }, "^role: no role")
    bad({ principal_id = w.sp_server, role = "SignalR App Server", scope = "/resourceGroups/x" }, "^scope: ")
    bad({ principal_id = w.sp_server, role = "SignalR App Server",
      scope = "/providers/Microsoft.Management/managementGroups/nope" }, "no management group nope")
    bad({ principal_id = w.sp_server, role = "SignalR App Server", scope = RESOURCE, id = "x" }, "^id: ")
    local a = assert(authz:add_assignment { principal_id = w.sp_server, role = "SignalR App Server", scope = RESOURCE })
    assert.is_true(directory.is_guid(a.id))
    bad({ principal_id = w.sp_server, role = "420fcaa2-552c-430f-98ca-3264be4806c7", scope = RESOURCE:upper() .. "/" },
      "RoleAssignmentExists")
    bad({ principal_id = w.user, role = "SignalR App Server", scope = RESOURCE, id = a.id }, "already exists")
    assert.is_nil(authz:remove_assignment(fx.uuid()))
    assert.is_true(authz:remove_assignment(a.id:upper()))
    assert.is_nil(authz:remove_assignment(a.id))
    assert.same({}, authz:list_assignments())
  end)

  it("parses the four scope kinds, case-insensitively", function()
    assert.equal("resource", rbac.parse_scope(RESOURCE).kind)
    assert.equal("resource_group", rbac.parse_scope(RG .. "/").kind)
    assert.equal("subscription", rbac.parse_scope("/SUBSCRIPTIONS/" .. SUB:upper()).kind)
    assert.equal("management_group", rbac.parse_scope(MG_TEAM:lower()).kind)
    assert.equal(RESOURCE:lower(), rbac.parse_scope(RESOURCE:upper()).normalized)
    assert.is_nil(rbac.parse_scope("/subscriptions/not-a-guid"))
    assert.is_nil(rbac.parse_scope(""))
    assert.is_nil(rbac.parse_scope(nil))
    local authz = new_authz()
    local chain = authz:scope_chain(RESOURCE)
    assert.same({ RESOURCE:lower(), RG:lower(), "/subscriptions/" .. SUB, MG_TEAM:lower(), MG_ROOT:lower() }, chain)
    assert.is_false(authz:check(principal(w.tenant_a, w.sp_server), "not a resource", "hub/send/action"))
  end)

  it("loads assignments and roles from the config, naming the field of each mistake", function()
    local authz = new_authz { role_definitions = { { name = "Custom", data_actions = { "*" } } },
      role_assignments = { { principal_id = w.user, role = "Custom", scope = MG_ROOT } } }
    assert.is_true(authz:check(principal(w.tenant_a, w.user), RESOURCE, "hub/send/action"))
    local function broken(extra, pattern)
      local a, err = rbac.new { directory = dir, config = extra }
      assert.is_nil(a)
      assert.matches(pattern, err)
    end
    broken({ management_groups = { { id = "a", parent = "b" }, { id = "b", parent = "a" } } }, "form a cycle")
    broken({ management_groups = { { id = "a", parent = "zz" } } }, "^management_groups%[1%]%.parent: no management")
    broken({ management_groups = { { id = "a", subscriptions = { SUB } }, { id = "b", subscriptions = { SUB } } } },
      "already in management group")
    broken({ management_groups = { { id = "has space" } } }, "^management_groups%[1%]%.id")
    broken({ role_definitions = { { name = "SignalR App Server", data_actions = { "*" } } } }, "already taken")
    broken({ role_definitions = { { name = "Empty" } } }, "at least one data action")
    broken({ role_definitions = { { name = "X", data_actions = { 5 } } } }, "data_actions%[1%]")
    broken({ role_definitions = { { name = "X", id = "nope", data_actions = { "*" } } } }, "%.id: must be a GUID")
    broken({ role_assignments = { { principal_id = w.user, role = "Nope", scope = RESOURCE } } },
      "^role_assignments%[1%]: role: no role")
    broken({ role_assignments = "x" }, "^role_assignments: must be a list")
    assert.is_true(rbac.validate(config(), dir))
  end)
end)
