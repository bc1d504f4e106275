-- Every data-plane REST route over real HTTPS, with real hub state observed through
-- WebSocket clients (lua-http, not the SDK). A message that must NOT arrive is checked by
-- sending a marker afterwards and asserting the marker is the next thing received.
local emulator = require "spec.helpers.emulator"
local hub_client = require "spec.helpers.hub_client"
local signing = require "spec.helpers.signing"
local cjson = require "cjson"

local emu, res, key

local function url_of(path, opts)
  local q = {}
  if opts.query and opts.query ~= "" then q[#q + 1] = opts.query end
  local version = opts.version
  if version == nil then version = "2024-12-01" end
  if version then q[#q + 1] = "api-version=" .. version end
  return res.endpoint .. path .. (#q > 0 and ("?" .. table.concat(q, "&")) or "")
end

-- opts: query, version (false = none), body (table or string), content_type, token, key
local function rest(method, path, opts)
  opts = opts or {}
  local url = url_of(path, opts)
  local token = opts.token
  if token == nil then token = signing.rest(opts.key or key, res.endpoint .. path) end
  local headers = { ["content-type"] = opts.content_type or "application/json" }
  if token then headers.authorization = "Bearer " .. token end
  local body = opts.body
  if type(body) == "table" then body = cjson.encode(body) end
  local status, h, text = emu:request { method = method, url = url, headers = headers, body = body }
  assert(status, h)
  return status, h, text
end

local function error_body(text)
  local b = cjson.decode(text)
  assert.is_table(b)
  assert.is_string(b.code)
  assert.is_string(b.message)
  assert.is_table(b.details)
  return b
end

local function connect(hub, user, extra)
  local token = signing.client(key, res.endpoint, hub, { user = user, claims = extra })
  return assert(hub_client.connect { endpoint = res.endpoint, hub = hub, token = token, ca_file = emu.ca_file })
end

local marker_n = 0
-- Asserts that `c` receives nothing before a marker sent to it now.
local function assert_nothing_pending(c, hub)
  marker_n = marker_n + 1
  local target = "marker" .. marker_n
  assert.equal(202, rest("POST", "/api/hubs/" .. hub .. "/connections/" .. c.connection_id .. "/:send",
    { body = { target = target } }))
  local msg = assert(c:next_invocation(5))
  assert.equal(target, msg.target)
end

local function send_body(target, ...)
  if select("#", ...) == 0 then return { target = target } end
  return { target = target, arguments = { ... } }
end

setup(function()
  emu = emulator.start { config = { settings = { invoke_timeout = 1 } } }
  res = emu.resources.signalr1
  key = emu.world.access_keys[1]
end)

teardown(function()
  if emu then emu:stop() end
end)

describe("REST sends", function()
  local a, b
  setup(function()
    a = connect("chat", "alice")
    b = connect("chat", "bob")
  end)
  teardown(function() a:close() b:close() end)

  it("broadcasts to every connection of the hub, arguments byte for byte", function()
    assert.equal(202, rest("POST", "/api/hubs/chat/:send",
      { body = '{"target":"news","arguments":[1, 12345678901234567890, {"x":[]}, "\\u00e9", null]}' }))
    for _, c in ipairs { a, b } do
      local msg = assert(c:next_invocation(5))
      assert.equal("news", msg.target)
      assert.truthy(msg._raw:find('[1, 12345678901234567890, {"x":[]}, "\\u00e9", null]', 1, true))
    end
  end)

  it("leaves out excluded connections", function()
    assert.equal(202, rest("POST", "/api/hubs/chat/:send",
      { query = "excluded=" .. a.connection_id, body = send_body("only-b") }))
    assert.equal("only-b", assert(b:next_invocation(5)).target)
    assert_nothing_pending(a, "chat")
  end)

  it("sends to one user, percent-decoded", function()
    local odd = connect("chat", "al ice/é")
    finally(function() odd:close() end)
    assert.equal(202, rest("POST", "/api/hubs/chat/users/al%20ice%2F%C3%A9/:send", { body = send_body("dm") }))
    assert.equal("dm", assert(odd:next_invocation(5)).target)
    assert_nothing_pending(a, "chat")
  end)

  it("sends to one connection", function()
    assert.equal(202, rest("POST", "/api/hubs/chat/connections/" .. b.connection_id .. "/:send",
        { body = send_body("one") }))
    assert.equal("one", assert(b:next_invocation(5)).target)
    assert_nothing_pending(a, "chat")
  end)

  it("keeps hubs apart and prefixes the application", function()
    local other = connect("app1_chat", "alice")
    finally(function() other:close() end)
    assert.equal(202, rest("POST", "/api/hubs/chat/:send", { query = "application=App1", body = send_body("app") }))
    assert.equal("app", assert(other:next_invocation(5)).target)
    assert_nothing_pending(a, "chat")
    assert.equal(202, rest("POST", "/api/hubs/Chat/:send", { body = send_body("case") }))
    assert.equal("case", assert(a:next_invocation(5)).target)
    assert.equal("case", assert(b:next_invocation(5)).target)
    assert_nothing_pending(other, "app1_chat")
  end)

  it("accepts a MessagePack body", function()
    -- {"target":"mp","arguments":[1,"hi",true]}
    local body = "\130\166target\162mp\169arguments\147\1\162hi\195"
    assert.equal(202, rest("POST", "/api/hubs/chat/connections/" .. a.connection_id .. "/:send",
      { body = body, content_type = "application/x-msgpack" }))
    local msg = assert(a:next_invocation(5))
    assert.equal("mp", msg.target)
    assert.same({ 1, "hi", true }, msg.arguments)
  end)

  it("serves the legacy v1 paths with PascalCase bodies", function()
    assert.equal(202, rest("POST", "/api/v1/hubs/chat", { version = false, body = { Target = "v1",
        Arguments = { 7 } } }))
    local msg = assert(a:next_invocation(5))
    assert.equal("v1", msg.target)
    assert.same({ 7 }, msg.arguments)
    assert.equal("v1", assert(b:next_invocation(5)).target)
    assert.equal(202, rest("POST", "/api/v1/hubs/chat/users/bob", { version = false, body = send_body("v1user") }))
    assert.equal("v1user", assert(b:next_invocation(5)).target)
    assert.equal(202, rest("POST", "/api/v1/hubs/chat/:send", { version = false, body = send_body("v1new") }))
    assert.equal("v1new", assert(a:next_invocation(5)).target)
    assert.equal("v1new", assert(b:next_invocation(5)).target)
  end)
end)

describe("REST existence checks and connection management", function()
  it("answers HEAD for connections, users and groups with x-ms-error-code on 404", function()
    local c = connect("exist", "carol")
    finally(function() c:close() end)
    assert.equal(200, rest("HEAD", "/api/hubs/exist/connections/" .. c.connection_id))
    assert.equal(200, rest("HEAD", "/api/hubs/exist/users/carol"))
    local status, h = rest("HEAD", "/api/hubs/exist/connections/nope")
    assert.equal(404, status)
    assert.equal("Warning.Connection.NotExisted", h:get("x-ms-error-code"))
    status, h = rest("HEAD", "/api/hubs/exist/users/nobody")
    assert.equal(404, status)
    assert.equal("Warning.User.NotExisted", h:get("x-ms-error-code"))
    status, h = rest("HEAD", "/api/hubs/exist/groups/empty")
    assert.equal(404, status)
    assert.equal("Warning.Group.NotExisted", h:get("x-ms-error-code"))
    -- v1 GET forms
    assert.equal(200, rest("GET", "/api/v1/hubs/exist/users/carol", { version = false }))
    assert.equal(200, rest("GET", "/api/v1/hubs/exist/connections/" .. c.connection_id, { version = false }))
    local text
    status, h, text = rest("GET", "/api/v1/hubs/exist/groups/empty", { version = false })
    assert.equal("Warning.Group.NotExisted", h:get("x-ms-error-code"))
    assert.equal(404, status)
    assert.equal("Warning.Group.NotExisted", error_body(text).code)
  end)

  it("closes one connection with a reason: Close message, then 404", function()
    local c = connect("close1", "dave")
    assert.equal(200, rest("DELETE", "/api/hubs/close1/connections/" .. c.connection_id,
        { query = "reason=bye%20now" }))
    local msg = assert(c:receive(5))
    assert.equal(7, msg.type)
    assert.equal("bye now", msg.error)
    assert.equal(404, rest("HEAD", "/api/hubs/close1/connections/" .. c.connection_id))
    -- closing a missing connection is not an error
    assert.equal(200, rest("DELETE", "/api/hubs/close1/connections/" .. c.connection_id))
    assert.equal(202, rest("DELETE", "/api/v1/hubs/close1/connections/gone", { version = false }))
  end)

  it("closes all, by user and by group, honouring excluded", function()
    local c1, c2, c3 = connect("close2", "u1"), connect("close2", "u2"), connect("close2", "u3")
    finally(function() c1:close() c2:close() c3:close() end)
    assert.equal(200, rest("PUT", "/api/hubs/close2/groups/g/connections/" .. c3.connection_id))
    assert.equal(204, rest("POST", "/api/hubs/close2/groups/g/:closeConnections", { query = "reason=grp" }))
    assert.equal("grp", assert(c3:receive(5)).error)
    assert.equal(204, rest("POST", "/api/hubs/close2/users/u2/:closeConnections"))
    assert.equal(7, assert(c2:receive(5)).type)
    assert.equal(204, rest("POST", "/api/hubs/close2/:closeConnections", { query = "excluded=" .. c1.connection_id }))
    assert.equal(200, rest("HEAD", "/api/hubs/close2/connections/" .. c1.connection_id))
    assert.equal(204, rest("POST", "/api/hubs/close2/:closeConnections"))
    assert.equal(7, assert(c1:receive(5)).type)
    assert.equal(404, rest("HEAD", "/api/hubs/close2/users/u1"))
  end)
end)

describe("REST groups", function()
  local c1, c2
  before_each(function()
    c1, c2 = connect("groups", "erin"), connect("groups", "frank")
  end)
  after_each(function() c1:close() c2:close() end)

  it("adds and removes connections, sends to the group with excluded", function()
    assert.equal(200, rest("PUT", "/api/hubs/groups/groups/room%201/connections/" .. c1.connection_id))
    assert.equal(200, rest("PUT", "/api/hubs/groups/groups/room%201/connections/" .. c2.connection_id))
    assert.equal(200, rest("HEAD", "/api/hubs/groups/groups/room%201"))
    assert.equal(202, rest("POST", "/api/hubs/groups/groups/room%201/:send",
      { query = "excluded=" .. c2.connection_id, body = send_body("room") }))
    assert.equal("room", assert(c1:next_invocation(5)).target)
    assert_nothing_pending(c2, "groups")
    assert.equal(200, rest("DELETE", "/api/hubs/groups/groups/room%201/connections/" .. c1.connection_id))
    local status, h, text = rest("DELETE", "/api/hubs/groups/groups/room%201/connections/" .. c1.connection_id)
    assert.equal(404, status)
    assert.equal("Error.Connection.NotExisted", h:get("x-ms-error-code"))
    assert.equal("Error.Connection.NotExisted", error_body(text).code)
    status, h = rest("PUT", "/api/hubs/groups/groups/room%201/connections/missing")
    assert.equal(404, status)
    assert.equal("Error.Connection.NotExisted", h:get("x-ms-error-code"))
    assert.equal(200, rest("DELETE", "/api/hubs/groups/connections/" .. c2.connection_id .. "/groups"))
    assert.equal(404, rest("HEAD", "/api/hubs/groups/groups/room%201"))
  end)

  it("adds users to groups: now, for later connections, and until removed", function()
    assert.equal(200, rest("PUT", "/api/hubs/groups/users/erin/groups/vip"))
    assert.equal(200, rest("HEAD", "/api/hubs/groups/users/erin/groups/vip"))
    assert.equal(200, rest("GET", "/api/hubs/groups/users/erin/groups/vip"))
    local later = connect("groups", "erin")
    finally(function() later:close() end)
    assert.equal(202, rest("POST", "/api/hubs/groups/groups/vip/:send", { body = send_body("vip") }))
    assert.equal("vip", assert(c1:next_invocation(5)).target)
    assert.equal("vip", assert(later:next_invocation(5)).target)
    assert_nothing_pending(c2, "groups")
    assert.equal(204, rest("DELETE", "/api/hubs/groups/users/erin/groups/vip"))
    local status, h = rest("HEAD", "/api/hubs/groups/users/erin/groups/vip")
    assert.equal(404, status)
    assert.equal("Info.User.NotInGroup", h:get("x-ms-error-code"))
    assert.equal(404, rest("HEAD", "/api/hubs/groups/groups/vip"))
    assert.equal(200, rest("PUT", "/api/hubs/groups/users/erin/groups/a"))
    assert.equal(200, rest("PUT", "/api/hubs/groups/users/erin/groups/b"))
    assert.equal(204, rest("DELETE", "/api/hubs/groups/users/erin/groups"))
    assert.equal(404, rest("HEAD", "/api/hubs/groups/users/erin/groups/a"))
    assert.equal(404, rest("HEAD", "/api/hubs/groups/users/erin/groups/b"))
  end)

  it("ttl=0 adds only the connections of the user that exist now", function()
    assert.equal(200, rest("PUT", "/api/hubs/groups/users/erin/groups/now", { query = "ttl=0" }))
    local later = connect("groups", "erin")
    finally(function() later:close() end)
    assert.equal(202, rest("POST", "/api/hubs/groups/groups/now/:send", { body = send_body("now") }))
    assert.equal("now", assert(c1:next_invocation(5)).target)
    assert_nothing_pending(later, "groups")
    assert.equal(400, rest("PUT", "/api/hubs/groups/users/erin/groups/now", { query = "ttl=-1" }))
    assert.equal(400, rest("PUT", "/api/hubs/groups/users/erin/groups/now", { query = "ttl=abc" }))
  end)

  it("serves the legacy v1 user-group paths", function()
    assert.equal(202, rest("PUT", "/api/v1/hubs/groups/groups/old/users/frank", { version = false }))
    assert.equal(200, rest("GET", "/api/v1/hubs/groups/groups/old/users/frank", { version = false }))
    assert.equal(200, rest("HEAD", "/api/v1/hubs/groups/groups/old/users/frank", { version = false }))
    assert.equal(202, rest("DELETE", "/api/v1/hubs/groups/groups/old/users/frank", { version = false }))
    assert.equal(404, rest("GET", "/api/v1/hubs/groups/groups/old/users/frank", { version = false }))
    assert.equal(200, rest("DELETE", "/api/v1/hubs/groups/users/frank/groups", { version = false }))
  end)

  it("lists group connections page by page with nextLink", function()
    local c3 = connect("groups", "gina")
    finally(function() c3:close() end)
    for _, c in ipairs { c1, c2, c3 } do
      assert.equal(200, rest("PUT", "/api/hubs/groups/groups/list/connections/" .. c.connection_id))
    end
    local status, _, text = rest("GET", "/api/hubs/groups/groups/list/connections", { query = "maxpagesize=2" })
    assert.equal(200, status)
    local page = cjson.decode(text)
    assert.equal(2, #page.value)
    assert.same({ connectionId = c1.connection_id, userId = "erin" }, page.value[1])
    assert.matches("^" .. res.endpoint:gsub("%p", "%%%0") .. "/api/hubs/groups/groups/list/connections%?",
        page.nextLink)
    assert.matches("continuationToken=", page.nextLink)
    local next_path = page.nextLink:match("^https://[^/]+([^?]+)")
    local token = signing.rest(key, res.endpoint .. next_path)
    status, _, text = emu:request { method = "GET", url = page.nextLink,
        headers = { authorization = "Bearer " .. token } }
    assert.equal(200, status)
    page = cjson.decode(text)
    assert.equal(1, #page.value)
    assert.equal(c3.connection_id, page.value[1].connectionId)
    assert.is_nil(page.nextLink)
    status, _, text = rest("GET", "/api/hubs/groups/groups/list/connections", { query = "top=1" })
    assert.equal(200, status)
    page = cjson.decode(text)
    assert.equal(1, #page.value)
    assert.is_nil(page.nextLink)
    status, _, text = rest("GET", "/api/hubs/groups/groups/none/connections")
    assert.equal(200, status)
    assert.equal("[]", text:match('"value":(%[%])'))
    assert.equal(400, rest("GET", "/api/hubs/groups/groups/list/connections", { query = "maxpagesize=0" }))
    assert.equal(400, rest("GET", "/api/hubs/groups/groups/list/connections", { query = "maxpagesize=201" }))
    assert.equal(400, rest("GET", "/api/hubs/groups/groups/list/connections", { query = "continuationToken=x" }))
    assert.equal(400, rest("GET", "/api/hubs/groups/groups/list/connections", { version = "2022-06-01" }))
  end)
end)

describe("REST user-group ttl on the emulator clock", function()
  -- its own emulator: moving the clock must not disturb the other specs
  local saved_emu, saved_res, c
  setup(function()
    saved_emu, saved_res = emu, res
    emu = emulator.start()
    res = emu.resources.signalr1
  end)
  teardown(function()
    if c then c:close() end
    emu:stop()
    emu, res = saved_emu, saved_res
  end)

  it("expires a membership when the clock passes its ttl", function()
    c = connect("ttl", "hank")
    assert.equal(200, rest("PUT", "/api/hubs/ttl/users/hank/groups/short", { query = "ttl=30" }))
    assert.equal(200, rest("HEAD", "/api/hubs/ttl/users/hank/groups/short"))
    assert.equal(200, rest("HEAD", "/api/hubs/ttl/groups/short"))
    local status = emu:admin("POST", "/admin/clock", { advance = 31 })
    assert.equal(200, status)
    -- tokens must follow the emulator clock from here on
    local _, clock = emu:admin("GET", "/admin/clock")
    local function rest_at(method, path)
      return rest(method, path, { token = signing.rest(key, res.endpoint .. path, { now = clock.now }) })
    end
    assert.equal(404, rest_at("HEAD", "/api/hubs/ttl/users/hank/groups/short"))
    assert.equal(404, rest_at("HEAD", "/api/hubs/ttl/groups/short"))
  end)
end)

describe("REST :generateToken, :invoke and :execute", function()
  it("generates a client token that connects as the user with roles and groups", function()
    local status, _, text = rest("POST", "/api/hubs/gen/:generateToken",
      { query = "userId=ivy&minutesToExpire=5&role=admin&group=g1" })
    assert.equal(200, status)
    local token = cjson.decode(text).token
    assert.is_string(token)
    local c = assert(hub_client.connect { endpoint = res.endpoint, hub = "gen", token = token, ca_file = emu.ca_file })
    finally(function() c:close() end)
    assert.equal(200, rest("HEAD", "/api/hubs/gen/users/ivy"))
    assert.equal(200, rest("HEAD", "/api/hubs/gen/groups/g1"))
    assert.equal(400, rest("POST", "/api/hubs/gen/:generateToken", { query = "minutesToExpire=0" }))
    assert.equal(400, rest("POST", "/api/hubs/gen/:generateToken", { version = "2022-06-01" }))
    assert.equal(200, rest("POST", "/api/hubs/gen/:generateToken", { version = "2023-07-01" }))
  end)

  it("invokes a client and returns its completion, error or timeout", function()
    local c = connect("inv", "jo")
    finally(function() c:close() end)
    -- the request runs in a coroutine so this test can answer the invocation meanwhile
    local cq = require "cqueues".new()
    local result = {}
    cq:wrap(function() result.status, result.h, result.text =
      rest("POST", "/api/hubs/inv/connections/" .. c.connection_id .. "/:invoke", { body = send_body("ask", 1) }) end)
    cq:wrap(function()
      local msg = assert(c:next_invocation(5, "ask"))
      assert.is_string(msg.invocationId)
      c:complete(msg.invocationId, { answer = 42 })
    end)
    assert(cq:loop(10))
    assert.equal(200, result.status)
    assert.same({ answer = 42 }, cjson.decode(result.text).result)

    cq:wrap(function() result.status, result.h, result.text =
      rest("POST", "/api/hubs/inv/connections/" .. c.connection_id .. "/:invoke", { body = send_body("ask") }) end)
    cq:wrap(function()
      local msg = assert(c:next_invocation(5, "ask"))
      c:complete(msg.invocationId, nil, "nope")
    end)
    assert(cq:loop(10))
    assert.equal(400, result.status)
    assert.matches("nope", error_body(result.text).message)

    -- nobody answers: invoke_timeout (1 s in this world)
    local status, _, text = rest("POST", "/api/hubs/inv/connections/" .. c.connection_id .. "/:invoke",
        { body = send_body("ask") })
    assert.equal(408, status)
    assert.equal("InvocationTimeout", error_body(text).code)
    assert.truthy(c:next_invocation(1, "ask"))
    local h
    status, h = rest("POST", "/api/hubs/inv/connections/missing/:invoke", { body = send_body("ask") })
    assert.equal(404, status)
    assert.equal("Error.Connection.NotExisted", h:get("x-ms-error-code"))
    assert.equal(400, rest("POST", "/api/hubs/inv/connections/" .. c.connection_id .. "/:invoke",
      { body = send_body("ask"), version = "2024-01-01" }))
  end)

  it("executes commands on the connections an OData filter selects", function()
    local l1, l2, other = connect("exec", "listener-1"), connect("exec", "listener-2"), connect("exec", "talker")
    finally(function() l1:close() l2:close() other:close() end)
    assert.equal(202, rest("POST", "/api/hubs/exec/:execute", { query = "filter=startswith(userId%2C%20'listener-')",
      body = '[{"type":"JoinGroup","group":"room1"}]' }))
    assert.equal(200, rest("HEAD", "/api/hubs/exec/groups/room1"))
    assert.equal(202, rest("POST", "/api/hubs/exec/:execute",
        { query = "filter=%27room1%27%20in%20groups%20and%20not%20(userId%20eq%20%27listener-2%27)",
      body = '[{"type":"SendMessage","message":{"target":"hello","arguments":[1]}}]' }))
    assert.equal("hello", assert(l1:next_invocation(5)).target)
    assert_nothing_pending(l2, "exec")
    assert_nothing_pending(other, "exec")
    assert.equal(202, rest("POST", "/api/hubs/exec/:execute", { query = "filter=userId%20eq%20%27talker%27",
      body = '[{"type":"LeaveGroup","group":"room1"},{"type":"CloseConnection","reason":"done"}]' }))
    assert.equal("done", assert(other:receive(5)).error)
    local status, _, text = rest("POST", "/api/hubs/exec/:execute", { query = "filter=userId%20eq", body = "[]" })
    assert.equal(400, status)
    assert.matches("filter", error_body(text).message)
    assert.equal(400, rest("POST", "/api/hubs/exec/:execute", { body = '[{"type":"Explode"}]' }))
    assert.equal(400, rest("POST", "/api/hubs/exec/:execute", { body = '{"type":"SendMessage"}' }))
    assert.equal(400, rest("POST", "/api/hubs/exec/:execute", { body = "[]", version = "2022-06-01" }))
  end)
end)

describe("REST input validation", function()
  it("refuses missing and unknown api-versions with a body", function()
    local status, _, text = rest("POST", "/api/hubs/val/:send", { version = false, body = send_body("x") })
    assert.equal(400, status)
    assert.equal("MissingApiVersion", error_body(text).code)
    status, _, text = rest("POST", "/api/hubs/val/:send", { version = "2019-01-01", body = send_body("x") })
    assert.equal(400, status)
    assert.equal("UnsupportedApiVersion", error_body(text).code)
    for _, v in ipairs { "2022-06-01", "2023-07-01", "2024-01-01", "2024-12-01" } do
      assert.equal(202, rest("POST", "/api/hubs/val/:send", { version = v, body = send_body("x") }))
    end
  end)

  it("validates hub, application and group names", function()
    local status, _, text = rest("POST", "/api/hubs/1bad/:send", { body = send_body("x") })
    assert.equal(400, status)
    assert.equal("hub", error_body(text).target)
    assert.equal(400, rest("POST", "/api/hubs/" .. ("h"):rep(129) .. "/:send", { body = send_body("x") }))
    assert.equal(202, rest("POST", "/api/hubs/" .. ("h"):rep(128) .. "/:send", { body = send_body("x") }))
    assert.equal(202, rest("POST", "/api/hubs/a_b%60c,d.e%5Bf%5D/:send", { body = send_body("x") }))
    assert.equal(400, rest("POST", "/api/hubs/ok/:send", { query = "application=9x", body = send_body("x") }))
    assert.equal(400, rest("POST", "/api/hubs/ok/groups/" .. ("g"):rep(1025) .. "/:send", { body = send_body("x") }))
    assert.equal(400, rest("POST", "/api/hubs/ok/groups/%20%20/:send", { body = send_body("x") }))
    assert.equal(202, rest("POST", "/api/hubs/ok/groups/" .. ("g"):rep(1024) .. "/:send", { body = send_body("x") }))
  end)

  it("refuses bad bodies: empty, malformed, no target, arguments not a list, over 1 MB", function()
    for _, body in ipairs { "", "{", "[1]", '{"arguments":[]}', '{"target":""}',
        '{"target":"t","arguments":{}}', "\0\1" } do
      local status, _, text = rest("POST", "/api/hubs/val/:send", { body = body })
      assert.equal(400, status, body)
      error_body(text)
    end
    local big = '{"target":"t","arguments":["' .. ("x"):rep(1024 * 1024) .. '"]}'
    local status, _, text = rest("POST", "/api/hubs/val/:send", { body = big })
    assert.equal(413, status)
    assert.equal("PayloadTooLarge", error_body(text).code)
    local fits = '{"target":"t","arguments":["' .. ("x"):rep(1024 * 1024 - 40) .. '"]}'
    assert.equal(202, rest("POST", "/api/hubs/val/:send", { body = fits }))
    assert.equal(200, emu:request { method = "GET", url = res.endpoint .. "/api/health" })
  end)
end)
