-- The REST API against signalr-emulator over HTTPS (trusting its CA), in both auth modes:
-- every operation, messages arriving at WebSocket clients (spec/helpers/hub_client.lua),
-- error paths, the role matrix, injected faults, batches, and sockets after 10,000 sends.
-- Non-delivery is proven by ordering: a marker broadcast after the call must be the next
-- message a left-out client sees.
local signalr = require "signalr"
local emulator = require "spec.helpers.emulator"
local hub_client = require "spec.helpers.hub_client"
local cjson = require "cjson"

local emu, res, world
local hub_seq = 0

local function fresh_hub_name()
  hub_seq = hub_seq + 1
  return "h" .. hub_seq
end

local function monotime()
  return require("cqueues").monotime()
end

local function access_key_service(opts)
  local o = { connection_string = res.connection_string, ca_file = emu.ca_file }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(signalr.new(o))
end

local function entra_credential(client_id, secret)
  return assert(signalr.credential.client_secret {
    tenant_id = world.tenant_id, client_id = client_id, client_secret = secret, authority_host = emu.authority,
  })
end

local function entra_service(opts, client_id, secret)
  local o = { endpoint = res.endpoint, ca_file = emu.ca_file,
    credential = entra_credential(client_id or world.app_id, secret or world.app_secret) }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(signalr.new(o))
end

-- Clients get their tokens from an access-key service: negotiate is not under test here.
local negotiator
local function connect(hub_name, user)
  negotiator = negotiator or access_key_service()
  local neg = assert(negotiator:negotiate(hub_name, { user_id = user }))
  local c = assert(hub_client.connect { endpoint = res.endpoint, hub = hub_name, token = neg.accessToken,
    ca_file = emu.ca_file })
  assert.is_string(c.connection_id)
  return c
end

local function next_message(c)
  local m, err = c:next_invocation(10)
  assert(m, "no message: " .. tostring(err))
  return m.target, m.arguments
end

local function counters()
  local status, body = emu:admin("GET", "/admin/counters")
  assert.equal(200, status)
  return body.routes or {}
end

local function count(routes, route, status)
  local r = routes[route]
  return r and r[tostring(status)] or 0
end

local function add_fault(rule)
  local status, body = emu:admin("POST", "/admin/faults", rule)
  assert(status == 200 or status == 201, "fault refused: " .. cjson.encode(body))
end

local function clear_faults()
  emu:admin("DELETE", "/admin/faults")
  emu:admin("DELETE", "/admin/counters")
end

lazy_setup(function()
  emu = emulator.start {}
  res = emu.resources.signalr1
  world = emu.world
end)

lazy_teardown(function()
  if emu then emu:stop() end
end)

for _, mode in ipairs { "access_key", "entra" } do
  describe("REST with " .. mode .. " auth", function()
    local svc
    before_each(function()
      svc = mode == "access_key" and access_key_service() or entra_service()
    end)

    it("reports the auth mode it runs in", function()
      assert.equal(mode, svc:info().auth)
    end)

    it("delivers sends to WebSocket clients: broadcast with excluded, user, group with excluded, connection", function()
      local name = fresh_hub_name()
      local hub = svc:hub(name)
      local a1, a2, b, c = connect(name, "alice"), connect(name, "alice"), connect(name, "bob"), connect(name, "carol")

      assert.is_true(hub:send_to_all("all", { 1, "x", { k = true }, signalr.array() },
        { excluded = { c.connection_id } }))
      assert.is_true(hub:send_to_all("mark", {}))
      for _, cl in ipairs { a1, a2, b } do
        local t, args = next_message(cl)
        assert.equal("all", t)
        assert.same({ 1, "x", { k = true }, {} }, args)
        assert.equal("mark", (next_message(cl)))
      end
      assert.equal("mark", (next_message(c)))

      assert.is_true(hub:send_to_user("alice", "to_alice", { "hi" }))
      assert.is_true(hub:send_to_all("mark", {}))
      for _, cl in ipairs { a1, a2 } do
        assert.equal("to_alice", (next_message(cl)))
        assert.equal("mark", (next_message(cl)))
      end
      assert.equal("mark", (next_message(b)))
      assert.equal("mark", (next_message(c)))

      assert.is_true(hub:add_connection_to_group(a1.connection_id, "room one"))
      assert.is_true(hub:add_connection_to_group(b.connection_id, "room one"))
      assert.is_true(hub:send_to_group("room one", "to_room", {}, { excluded = { b.connection_id } }))
      assert.is_true(hub:send_to_connection(c.connection_id, "direct", { 42 }))
      assert.is_true(hub:send_to_all("mark", {}))
      assert.equal("to_room", (next_message(a1)))
      local t, args = next_message(c)
      assert.equal("direct", t)
      assert.same({ 42 }, args)
      for _, cl in ipairs { a1, a2, b, c } do assert.equal("mark", (next_message(cl))) end
      for _, cl in ipairs { a1, a2, b, c } do cl:close() end
    end)

    it("answers existence checks true or false, and manages group membership", function()
      local name = fresh_hub_name()
      local hub = svc:hub(name)
      local a, b = connect(name, "alice"), connect(name, "bob")
      assert.is_true(hub:connection_exists(a.connection_id))
      assert.is_false(hub:connection_exists("no-such-connection"))
      assert.is_true(hub:user_exists("alice"))
      assert.is_false(hub:user_exists("zed"))
      assert.is_false(hub:group_exists("room"))
      assert.is_true(hub:add_connection_to_group(a.connection_id, "room"))
      assert.is_false(hub:add_connection_to_group("no-such-connection", "room"))
      assert.is_true(hub:group_exists("room"))

      assert.is_true(hub:add_user_to_group("bob", "vip", { ttl = 600 }))
      assert.is_true(hub:user_in_group("bob", "vip"))
      assert.is_false(hub:user_in_group("alice", "vip"))
      assert.is_true(hub:send_to_group("vip", "vip_only", {}))
      assert.is_true(hub:send_to_all("mark", {}))
      assert.equal("vip_only", (next_message(b)))
      assert.equal("mark", (next_message(b)))
      assert.equal("mark", (next_message(a)))
      assert.is_true(hub:remove_user_from_group("bob", "vip"))
      assert.is_false(hub:user_in_group("bob", "vip"))
      assert.is_true(hub:add_user_to_group("bob", "g1"))
      assert.is_true(hub:add_user_to_group("bob", "g2"))
      assert.is_true(hub:remove_user_from_all_groups("bob"))
      assert.is_false(hub:user_in_group("bob", "g1"))
      assert.is_false(hub:user_in_group("bob", "g2"))

      assert.is_true(hub:remove_connection_from_group(a.connection_id, "room"))
      assert.is_false(hub:remove_connection_from_group(a.connection_id, "room"))
      assert.is_false(hub:group_exists("room"))
      assert.is_true(hub:add_connection_to_group(a.connection_id, "x"))
      assert.is_true(hub:add_connection_to_group(a.connection_id, "y"))
      assert.is_true(hub:remove_connection_from_all_groups(a.connection_id))
      assert.is_false(hub:group_exists("x"))
      assert.is_false(hub:group_exists("y"))
      a:close()
      b:close()
    end)

    it("closes connections with a reason: one, a user's, a group's, all but excluded", function()
      local name = fresh_hub_name()
      local hub = svc:hub(name)
      local one, u1, u2, g, keep = connect(name, "one"), connect(name, "u"), connect(name, "u"), connect(name, "g"),
        connect(name, "keep")
      assert.is_true(hub:close_connection(one.connection_id, { reason = "bye one" }))
      local m, err = one:next_invocation(10)
      assert.is_nil(m)
      assert.equal("closed by server: bye one", err)
      assert.is_false(hub:connection_exists(one.connection_id))
      assert.is_true(hub:close_connection("already-gone"))

      assert.is_true(hub:close_user_connections("u", { reason = "user closed" }))
      for _, cl in ipairs { u1, u2 } do
        assert.equal("closed by server: user closed", select(2, cl:next_invocation(10)))
      end
      assert.is_false(hub:user_exists("u"))

      assert.is_true(hub:add_connection_to_group(g.connection_id, "grp"))
      assert.is_true(hub:close_group_connections("grp"))
      assert.matches("^closed", select(2, g:next_invocation(10)))
      assert.is_false(hub:connection_exists(g.connection_id))

      local other = connect(name, "other")
      assert.is_true(hub:close_all_connections({ excluded = { keep.connection_id }, reason = "maintenance" }))
      assert.equal("closed by server: maintenance", select(2, other:next_invocation(10)))
      assert.is_true(hub:connection_exists(keep.connection_id))
      keep:close()
    end)

    it("generates client tokens the service accepts (2024-12-01)", function()
      local name = fresh_hub_name()
      local hub = svc:hub(name)
      local before = os.time()
      local tok, exp, url = hub:generate_token { user_id = "dave", lifetime = 120, groups = { "team" } }
      assert.is_string(tok)
      assert(exp >= before + 120 - 5 and exp <= os.time() + 120 + 5, "expiry " .. tostring(exp))
      assert.equal(res.endpoint .. "/client/?hub=" .. name, url)
      local c = assert(hub_client.connect { endpoint = res.endpoint, hub = name, token = tok, ca_file = emu.ca_file })
      assert.is_true(hub:user_exists("dave"))
      assert.is_true(hub:send_to_user("dave", "welcome", {}))
      assert.equal("welcome", (next_message(c)))
      c:close()
    end)

    it("lists a group's connections as an iterator over pages (2024-12-01)", function()
      local name = fresh_hub_name()
      local hub = svc:hub(name)
      local clients, ids = {}, {}
      for i = 1, 5 do
        clients[i] = connect(name, "user" .. i)
        ids[clients[i].connection_id] = "user" .. i
        assert.is_true(hub:add_connection_to_group(clients[i].connection_id, "big"))
      end
      local sizes, seen = {}, {}
      for page, err in hub:group_connections("big", { page_size = 2 }) do
        assert(page, tostring(err))
        sizes[#sizes + 1] = #page
        for _, entry in ipairs(page) do
          assert.equal(ids[entry.connection_id], entry.user_id)
          seen[entry.connection_id] = true
        end
      end
      assert.same({ 2, 2, 1 }, sizes)
      for id in pairs(ids) do assert.is_true(seen[id]) end
      local total = 0
      for page in hub:group_connections("big", { page_size = 2, top = 3 }) do total = total + #page end
      assert.equal(3, total)
      for _ in hub:group_connections("nobody-here") do error("an empty group has no pages") end
      for _, c in ipairs(clients) do c:close() end
    end)

    it("invokes a client method and returns its result (2024-12-01)", function()
      local name = fresh_hub_name()
      local neg = assert((negotiator or access_key_service()):negotiate(name, { user_id = "calc" }))
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write([[
local hub_client = require "spec.helpers.hub_client"
local c = assert(hub_client.connect { endpoint = arg[1], hub = arg[2], token = arg[3], ca_file = arg[4] })
io.write(c.connection_id, "\n") io.flush()
local m = assert(c:next_invocation(20))
assert(c:complete(m.invocationId, { sum = m.arguments[1] + m.arguments[2], method = m.target }))
io.write("answered\n") io.flush()
c:receive(1)
c:close()
]])
      f:close()
      local child = assert(io.popen(("env -u LD_PRELOAD LUA_PATH='./?.lua;./?/init.lua;lua/?.lua;;' LUA_CPATH=';;' " ..
        "lua5.4 %s %s %s %s %s"):format(script, res.endpoint, name, neg.accessToken, emu.ca_file)))
      local id = child:read("*l")
      assert.is_string(id)
      local hub = svc:hub(name)
      local result = hub:invoke(id, "add", { 2, 3 })
      assert.same({ sum = 5, method = "add" }, result)
      assert.equal("answered", child:read("*l"))
      child:close()
      os.remove(script)
      local r, err = hub:invoke("no-such-connection", "add", { 1, 1 })
      assert.is_nil(r)
      assert.equal("not_found", err.kind)
      assert.equal("Error.Connection.NotExisted", err.code)
    end)

    it("executes commands on the connections an OData filter selects (2024-12-01)", function()
      local name = fresh_hub_name()
      local hub = svc:hub(name)
      local a, b = connect(name, "listener-1"), connect(name, "other")
      assert.is_true(hub:execute({
        { type = "SendMessage", target = "filtered", arguments = { "x" } },
        { type = "JoinGroup", group = "listeners" },
      }, { filter = "startswith(userId, 'listener-')" }))
      assert.is_true(hub:send_to_all("mark", {}))
      local t, args = next_message(a)
      assert.equal("filtered", t)
      assert.same({ "x" }, args)
      assert.equal("mark", (next_message(a)))
      assert.equal("mark", (next_message(b)))
      assert.is_true(hub:group_exists("listeners"))
      -- the service's 400 text reaches the caller
      local r, err = hub:execute({ { type = "LeaveGroup", group = "listeners" } }, { filter = "userId eq" })
      assert.is_nil(r)
      assert.equal("invalid_argument", err.kind)
      assert.equal(400, err.status)
      assert.equal("InvalidArgument", err.code)
      assert.matches("answered 400: Invalid filter", err.message)
      a:close()
      b:close()
    end)

    it("probes health", function()
      assert.is_true(svc:health())
    end)
  end)
end

describe("REST authorization failures", function()
  it("a wrong access key: 401 with a hint about the key, and no key in the error", function()
    local bad_key = "WrongKeyWrongKeyWrongKeyWrongKeyWrongKey00"
    local svc = assert(signalr.new { connection_string = "Endpoint=" .. res.endpoint .. ";AccessKey=" .. bad_key ..
      ";Version=1.0;", ca_file = emu.ca_file })
    local r, err = svc:hub("chat"):send_to_all("t", {})
    assert.is_nil(r)
    assert.equal("unauthorized", err.kind)
    assert.equal(401, err.status)
    assert.matches("AccessKey", err.hint, 1, true)
    assert.is_nil(tostring(err):find(bad_key, 1, true))
  end)

  it("an Entra token from another tenant: 401 with a hint about the credential", function()
    local status, body = emu:admin("POST", "/admin/tokens", { tenant_id = world.other_tenant_id,
      principal_id = world.other_user })
    assert.equal(200, status)
    local svc = assert(signalr.new { endpoint = res.endpoint, ca_file = emu.ca_file,
      credential = signalr.credential.static(body.access_token) })
    local r, err = svc:hub("chat"):user_exists("u")
    assert.is_nil(r)
    assert.equal("unauthorized", err.kind)
    assert.matches("Microsoft Entra token", err.hint, 1, true)
    assert.is_nil(tostring(err):find(body.access_token, 1, true))
  end)

  it("a wrong endpoint path: 404 with the check-the-endpoint hint", function()
    local svc = assert(signalr.new { connection_string = "Endpoint=" .. res.endpoint .. ";ServerEndpoint=" ..
      res.endpoint .. "/not-here;AccessKey=" .. res.access_keys[1] .. ";Version=1.0;", ca_file = emu.ca_file })
    local r, err = svc:hub("chat"):send_to_all("t", {})
    assert.is_nil(r)
    assert.equal("not_found", err.kind)
    assert.equal("unable to access SignalR service, check the endpoint", err.hint)
  end)

  it("TLS verification stays on: without the emulator's CA the call fails", function()
    local svc = assert(signalr.new { connection_string = res.connection_string, max_retries = 0 })
    local r, err = svc:hub("chat"):send_to_all("t", {})
    assert.is_nil(r)
    assert.equal("network", err.kind)
    assert.matches("TLS", err.message)
    assert.matches("ca_file", err.hint)
  end)
end)

describe("REST role matrix (Microsoft Entra ID)", function()
  local svc, assignment
  local function assign(role)
    local status, body = emu:admin("POST", "/admin/role-assignments", { principal_id = world.reader_sp, role = role,
      scope = res.resource_id })
    assert(status == 200 or status == 201, "role assignment refused: " .. cjson.encode(body))
    assignment = body.id
  end
  before_each(function()
    svc = entra_service(nil, world.reader_app_id, world.reader_secret)
  end)
  after_each(function()
    if assignment then emu:admin("DELETE", "/admin/role-assignments/" .. assignment) end
    assignment = nil
  end)

  local function forbidden(roles, r, err)
    assert.is_nil(r)
    assert.equal("forbidden", err.kind)
    assert.equal(403, err.status)
    assert.matches(roles, err.hint, 1, true)
    assert.matches("up to 30 minutes", err.hint, 1, true)
  end

  local function can_do_everything(hub)
    local c = connect(hub:name(), "member")
    assert.is_true(hub:send_to_all("t", {}))
    assert.is_true(hub:send_to_user("member", "t", {}))
    assert.is_true(hub:user_exists("member"))
    assert.is_false(hub:group_exists("g"))
    assert.is_true(hub:add_connection_to_group(c.connection_id, "g"))
    assert.is_true(hub:add_user_to_group("member", "g2"))
    assert.is_true(hub:user_in_group("member", "g2"))
    assert.is_string((hub:generate_token { user_id = "x" }))
    for page, err in hub:group_connections("g") do assert(page, tostring(err)) end
    assert.is_true(hub:execute({ { type = "LeaveGroup", group = "g" } }))
    assert.is_true(hub:close_connection(c.connection_id))
  end

  it("with no role everything is forbidden, naming the roles that would allow it", function()
    local hub = svc:hub(fresh_hub_name())
    forbidden("'SignalR REST API Owner' or 'SignalR Service Owner'", hub:send_to_all("t", {}))
    forbidden("'SignalR REST API Reader'", hub:user_exists("u"))
  end)

  it("SignalR REST API Owner may do everything", function()
    assign("SignalR REST API Owner")
    can_do_everything(svc:hub(fresh_hub_name()))
  end)

  it("SignalR Service Owner may do everything", function()
    assign("SignalR Service Owner")
    can_do_everything(svc:hub(fresh_hub_name()))
  end)

  it("SignalR REST API Reader may only check existence", function()
    assign("SignalR REST API Reader")
    local hub = svc:hub(fresh_hub_name())
    assert.is_false(hub:user_exists("u"))
    assert.is_false(hub:connection_exists("c"))
    assert.is_false(hub:group_exists("g"))
    assert.is_false(hub:user_in_group("u", "g"))
    forbidden("'SignalR REST API Owner' or 'SignalR Service Owner'", hub:send_to_all("t", {}))
    forbidden("group/send/action", hub:send_to_group("g", "t", {}))
    forbidden("user/write", hub:add_user_to_group("u", "g"))
    forbidden("clientConnection/write", hub:close_connection("c"))
    forbidden("auth/clientToken/action", hub:generate_token())
  end)

  it("SignalR App Server cannot send", function()
    assign("SignalR App Server")
    local hub = svc:hub(fresh_hub_name())
    forbidden("'SignalR REST API Owner' or 'SignalR Service Owner'", hub:send_to_all("t", {}))
    forbidden("user/send/action", hub:send_to_user("u", "t", {}))
    forbidden("user/read", hub:user_exists("u"))
  end)
end)

describe("REST under injected faults", function()
  local svc
  before_each(function()
    clear_faults()
    svc = access_key_service { retry_delay = 0.05, max_retry_delay = 5, max_retries = 3, timeout = 1 }
  end)
  after_each(clear_faults)

  it("429 with Retry-After: waits as told, then succeeds", function()
    add_fault { route = "/api/hubs/{hub}/:send", method = "POST", kind = "throttle", retry_after = 1, count = 1 }
    local started = monotime()
    assert.is_true(svc:hub("faults"):send_to_all("t", {}))
    assert.is_true(monotime() - started >= 0.95)
    local routes = counters()
    assert.equal(1, count(routes, "POST /api/hubs/{hub}/:send", 429))
    assert.equal(1, count(routes, "POST /api/hubs/{hub}/:send", 202))
  end)

  it("503: retried up to the limit, then a clear error", function()
    add_fault { route = "/api/hubs/{hub}/users/{user}/:send", kind = "status", status = 503, count = 10 }
    local r, err = svc:hub("faults"):send_to_user("u", "t", {})
    assert.is_nil(r)
    assert.equal("service_error", err.kind)
    assert.equal(503, err.status)
    assert.matches("send_to_user: POST " .. res.endpoint:gsub("%p", "%%%0") ..
      "/api/hubs/faults/users/u/:send answered 503: Fault injected by the emulator's admin API %(after 4 attempts%)$",
      err.message)
    assert.equal(4, count(counters(), "POST /api/hubs/{hub}/users/{user}/:send", 503))
  end)

  it("a delay past the timeout: a timeout error, no hang; an idempotent call is retried", function()
    add_fault { route = "/api/hubs/{hub}/:send", kind = "delay", delay = 4, count = 1 }
    local started = monotime()
    local r, err = svc:hub("faults"):send_to_all("t", {})
    assert.is_nil(r)
    assert.equal("timeout", err.kind)
    assert.matches("timed out", err.message)
    assert.is_true(monotime() - started < 3)
    add_fault { route = "/api/hubs/{hub}/users/{user}", kind = "delay", delay = 4, count = 1 }
    assert.is_false(svc:hub("faults"):user_exists("nobody"))
  end)

  it("a dropped connection: retried for safe calls, reported for sends", function()
    -- libcurl resends once by itself when a reused keep-alive connection turns out dead
    -- before any answer byte (a stale connection), so each fault drops two attempts.
    add_fault { route = "/api/hubs/{hub}/users/{user}", kind = "reset", count = 2 }
    assert.is_false(svc:hub("faults"):user_exists("nobody"))
    add_fault { route = "/api/hubs/{hub}/:send", kind = "reset", count = 2 }
    local r, err = svc:hub("faults"):send_to_all("t", {})
    assert.is_nil(r)
    assert.equal("network", err.kind)
    assert.matches("lost its connection", err.message)
    assert.is_true(svc:hub("faults"):send_to_all("t", {}))
  end)

  it("400 bodies are surfaced with their code", function()
    add_fault { route = "/api/hubs/{hub}/groups/{group}/:send", kind = "status", status = 400, count = 1,
      body = { code = "Error.Emulator.Refused", message = "The emulator refuses this group." } }
    local r, err = svc:hub("faults"):send_to_group("g", "t", {})
    assert.is_nil(r)
    assert.equal("invalid_argument", err.kind)
    assert.equal("Error.Emulator.Refused", err.code)
    assert.matches("answered 400: The emulator refuses this group$", err.message)
  end)

  it("throttling inside a batch: each call waits and succeeds", function()
    add_fault { route = "/api/hubs/{hub}/users/{user}/:send", kind = "throttle", retry_after = 1, count = 3 }
    local b = svc:batch { max_in_flight = 4 }
    local hub = b:hub("faults")
    for i = 1, 12 do hub:send_to_user("u" .. i, "t", {}) end
    local results = b:run()
    assert.equal(12, #results)
    for i, r in ipairs(results) do assert(r[1] == true, "call " .. i .. ": " .. tostring(r.err)) end
    local routes = counters()
    assert.equal(3, count(routes, "POST /api/hubs/{hub}/users/{user}/:send", 429))
    assert.equal(12, count(routes, "POST /api/hubs/{hub}/users/{user}/:send", 202))
  end)
end)

describe("REST batches", function()
  it("runs many calls concurrently and returns each result in queue order", function()
    local svc = access_key_service()
    local name = fresh_hub_name()
    local c = connect(name, "alice")
    local b = svc:batch { max_in_flight = 8 }
    local hub = b:hub(name)
    -- strings built per call and dropped: the batch keeps its own copies until it runs
    for i = 1, 50 do assert.equal(i, hub:send_to_user(("ali" .. "ce"), "n", { i, ("p"):rep(i) })) end
    assert.equal(51, hub:user_exists("alice"))
    assert.equal(52, hub:user_exists("nobody"))
    local refused, why = hub:send_to_user("", "n", {}) -- refused before queueing
    assert.is_nil(refused)
    assert.equal("invalid_argument", why.kind)
    assert.equal(52, #b)
    collectgarbage("collect")
    local results = b:run()
    assert.equal(52, #results)
    assert.equal(0, #b)
    for i = 1, 50 do assert.same({ true, n = 1 }, results[i]) end
    assert.is_true(results[51][1])
    assert.is_false(results[52][1])
    local got = {}
    for _ = 1, 50 do
      local t, args = next_message(c)
      assert.equal("n", t)
      assert.equal(("p"):rep(args[1]), args[2])
      got[args[1]] = true
    end
    for i = 1, 50 do assert.is_true(got[i]) end
    c:close()
  end)

  it("reports each call's own failure (Entra, a principal without a role)", function()
    local svc = entra_service(nil, world.reader_app_id, world.reader_secret)
    local owner = entra_service()
    local b1, b2 = svc:batch(), owner:batch()
    b1:hub("chat"):send_to_all("t", {})
    b2:hub("chat"):send_to_all("t", {})
    local r1, r2 = b1:run(), b2:run()
    assert.is_nil(r1[1][1])
    assert.equal("forbidden", r1[1].err.kind)
    assert.equal(2, r1[1].n)
    assert.is_true(r2[1][1])
    assert.is_nil(r2[1].err)
  end)
end)

describe("REST sockets", function()
  -- TCP sockets this process holds towards the resource's port (inodes from /proc/<pid>/fd
  -- matched against /proc/net/tcp and tcp6), after collecting garbage until the count is
  -- stable: services and clients earlier specs dropped must not close theirs mid-count.
  -- sl, local address, remote address (port captured), st, tx:rx, tr:when, retrnsmt, uid,
  -- timeout, inode (captured)
  local TCP_LINE = "^%s*%d+:%s+%x+:%x+%s+%x+:(%x+)%s+%x+%s+%S+%s+%S+%s+%S+%s+%d+%s+%d+%s+(%d+)"

  local function inodes_to(port)
    local hex = ("%04X"):format(port)
    local set = {}
    for _, file in ipairs { "/proc/net/tcp", "/proc/net/tcp6" } do
      local f = io.open(file)
      if f then
        for line in f:lines() do
          local rem_port, inode = line:match(TCP_LINE)
          if rem_port == hex then set[inode] = true end
        end
        f:close()
      end
    end
    return set
  end

  -- The set of socket inodes this process holds towards the resource's port.
  local function sockets()
    collectgarbage("collect")
    local port = tonumber(res.endpoint:match(":(%d+)$"))
    local pid = assert(io.open("/proc/self/stat")):read("*l"):match("^(%d+)")
    local ours = inodes_to(port)
    local p = assert(io.popen("ls -l /proc/" .. pid .. "/fd 2>/dev/null"))
    local set, n = {}, 0
    for line in p:lines() do
      local inode = line:match("socket:%[(%d+)%]")
      if inode and ours[inode] then
        set[inode] = true
        n = n + 1
      end
    end
    p:close()
    return set, n
  end

  -- Sockets in `b` that were not in `a`.
  local function added(a, b)
    local list = {}
    for inode in pairs(b) do
      if not a[inode] then list[#list + 1] = inode end
    end
    return list
  end

  -- Counting by inode makes the check exact: other specs' clients closing their sockets
  -- meanwhile cannot hide a new connection.
  it("keeps one connection alive: no socket leak after 10,000 sequential sends", function()
    local others = sockets()
    local svc = access_key_service()
    local hub = svc:hub("leak")
    assert.is_true(hub:send_to_all("warm", {}))
    local before = sockets()
    local mine = added(others, before)
    assert.equal(1, #mine) -- one keep-alive connection
    for i = 1, 10000 do
      local ok, err = hub:send_to_all("t", { i })
      if not ok then error(tostring(err)) end
    end
    assert.is_true(hub:user_exists("nobody") == false)
    local after = sockets()
    assert.same({}, added(before, after))
    assert.is_true(after[mine[1]]) -- still the same connection
  end)

  it("reuses the batch's connections: no socket leak after 10,000 concurrent sends", function()
    local others = sockets()
    local svc = access_key_service()
    local b = svc:batch { max_in_flight = 16 }
    for _ = 1, 32 do b:hub("leak"):send_to_all("warm", {}) end
    b:run()
    local before = sockets()
    local opened = #added(others, before)
    assert(opened >= 1 and opened <= 16, ("%d connections for 16 in flight"):format(opened))
    for round = 1, 10 do
      local hub = b:hub("leak")
      for i = 1, 1000 do hub:send_to_all("t", { round, i }) end
      for i, r in ipairs(b:run()) do
        if not r[1] then error("call " .. i .. ": " .. tostring(r.err)) end
      end
    end
    assert.same({}, added(before, sockets()))
  end)
end)
