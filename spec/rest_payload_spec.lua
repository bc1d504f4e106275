-- Message payloads: how Lua values become JSON (signalr.json_encode is the encoder the
-- hub methods use), the shape markers, values JSON cannot carry, and the 1 MB limit.
-- Bodies are read back with lua-cjson, which shares no code with the encoder.
local signalr = require "signalr"
local cjson = require "cjson"

local enc = signalr.json_encode

describe("payload encoding", function()
  it("encodes scalars: integers exactly, floats round-trip, strings escaped", function()
    assert.equal("null", enc(signalr.null))
    assert.equal("true", enc(true))
    assert.equal("false", enc(false))
    assert.equal("42", enc(42))
    assert.equal("-7", enc(-7))
    assert.equal("0.1", enc(0.1))
    assert.equal(1 / 3, cjson.decode(enc(1 / 3)))
    assert.equal('"a\\"b\\\\c\\n\\u0001"', enc('a"b\\c\n\1'))
    assert.equal('"héllo ✓"', enc("héllo ✓"))
    if math.type then -- Lua 5.3+: integers beyond 2^53 stay exact
      assert.equal("9007199254740993", enc(9007199254740993))
    end
  end)

  it("encodes sequences as arrays and string-keyed tables as objects", function()
    assert.equal("[1,2,3]", enc({ 1, 2, 3 }))
    assert.same({ a = 1, b = { c = "d" } }, cjson.decode(enc({ a = 1, b = { c = "d" } })))
    assert.equal('[{"x":[true,false]}]', enc({ { x = { true, false } } }))
  end)

  it("encodes an empty table as an object unless marked as an array", function()
    assert.equal("{}", enc({}))
    assert.equal("[]", enc(signalr.array({})))
    assert.equal("[]", enc(signalr.array()))
    assert.equal("{}", enc(signalr.object()))
    assert.equal('{"list":[]}', enc({ list = signalr.array() }))
  end)

  it("honours markers on non-empty tables and dkjson-style __jsontype metatables", function()
    assert.equal("[1,2]", enc(signalr.array({ 1, 2 })))
    local t = signalr.object({ k = 1 })
    assert.equal('{"k":1}', enc(t))
    assert.equal("[5]", enc(setmetatable({ 5 }, { __jsontype = "array" })))
    -- signalr.array returns the same table it marks
    local list = { 1 }
    assert.equal(list, signalr.array(list))
  end)

  it("encodes cjson.null as null (the same NULL light userdata)", function()
    assert.equal("[null,1]", enc({ cjson.null, 1 }))
  end)

  it("raises for values JSON cannot carry, naming where they are", function()
    local cases = {
      { { f = print }, "value.f is a function" },
      { { 1, { 2, coroutine.create(print) } }, "value[2][2] is a thread" },
      { { [1] = 1, [3] = 3 }, "value is a sparse array" },
      { { 1, x = 2 }, "value mixes array items and named keys" },
      { { [1.5] = 1 }, "not a positive integer" },
      { { [true] = 1 }, "neither a string nor a positive integer" },
      { 0 / 0, "value is NaN or infinite" },
      { { v = math.huge }, "value.v is NaN or infinite" },
      { { ["a key"] = "\255" }, 'value["a key"] is a string that is not valid UTF-8' },
    }
    for _, case in ipairs(cases) do
      local ok, msg = pcall(enc, case[1])
      assert.is_false(ok)
      assert.matches(case[2], msg, 1, true)
    end
    local cycle = {}
    cycle.self = cycle
    local ok, msg = pcall(enc, cycle)
    assert.is_false(ok)
    assert.matches("nests more than 100 levels", msg, 1, true)
  end)
end)

describe("hub argument checks (before any request)", function()
  local svc = assert(signalr.new {
    connection_string = "Endpoint=https://127.0.0.1:9;AccessKey=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG;" ..
      "Version=1.0;",
    connect_timeout = 1, max_retries = 0,
  })
  local hub = assert(svc:hub("chat"))

  it("svc:hub refuses names the service would refuse", function()
    local h, err = svc:hub("1chat")
    assert.is_nil(h)
    assert.equal("invalid_argument", err.kind)
    assert.matches("hub name is not valid", tostring(err), 1, true)
    local ok, msg = pcall(svc.hub, svc, 5)
    assert.is_false(ok)
    assert.matches("hub must be a string, got number", msg, 1, true)
    assert.equal("chat", hub:name())
    assert.matches("^signalr.hub %(chat%)$", tostring(hub))
  end)

  it("raises for arguments of the wrong type, naming them", function()
    local cases = {
      { function() hub:send_to_all(5, {}) end, "target must be a string, got number" },
      { function() hub:send_to_all("t", "x") end, "args must be a list (table) of arguments or nil, got string" },
      { function() hub:send_to_all("t", { print }) end, "args[1] is a function" },
      { function() hub:send_to_all("t", { a = 1 }) end, "args must be a list of arguments (a sequence)" },
      { function() hub:send_to_all("t", {}, { exclude = {} }) end, "unknown option 'exclude' (known: excluded)" },
      { function() hub:send_to_all("t", {}, { excluded = { 1 } }) end, "options.excluded[1] must be a string" },
      { function() hub:send_to_user(nil, "t", {}) end, "user_id must be a string, got nil" },
      { function() hub:send_to_group("g", "t", {}, { excluded = 5 }) end,
        "options.excluded must be a list of strings" },
      { function() hub:user_exists(1) end, "user_id must be a string, got number" },
      { function() hub:add_connection_to_group("c", nil) end, "group must be a string, got nil" },
      { function() hub:add_user_to_group("u", "g", { ttl = "1" }) end, "options.ttl must be a whole number" },
      { function() hub:add_user_to_group("u", "g", { ttl = 1.5 }) end, "options.ttl must be a whole number" },
      { function() hub:close_connection("c", { reason = 1 }) end, "options.reason must be a string" },
      { function() hub:close_all_connections({ why = "x" }) end, "unknown option 'why' (known: reason, excluded)" },
      { function() hub:generate_token({ lifetime = "1h" }) end, "options.lifetime must be a number of seconds" },
      { function() hub:generate_token({ roles = { 1 } }) end, "options.roles[1] must be a string" },
      { function() hub:execute("x") end, "commands must be a list of command tables" },
      { function() hub:execute({ { type = "Shout" } }) end, 'commands[1].type must be "SendMessage"' },
      { function() hub:execute({ { type = "JoinGroup" } }) end, "commands[1].group must be a string" },
      { function() hub:execute({ { type = "SendMessage", target = "t", arguments = { print } } }) end,
        "commands[1].arguments[1] is a function" },
      { function() hub:group_connections(5) end, "group must be a string, got number" },
      { function() hub:group_connections("g", { page_size = 2.5 }) end, "options.page_size must be a whole number" },
      { function() hub:invoke("c", "t", 5) end, "args must be a list (table) of arguments or nil" },
    }
    for i, case in ipairs(cases) do
      local ok, msg = pcall(case[1])
      assert(not ok, "case " .. i .. " did not raise")
      assert(msg:find("bad argument", 1, true), "case " .. i .. ": " .. msg)
      assert(msg:find(case[2], 1, true), "case " .. i .. ": expected '" .. case[2] .. "' in: " .. msg)
    end
  end)

  it("returns invalid_argument errors for values the service would refuse, without a request", function()
    local cases = {
      { function() return hub:send_to_all("", {}) end, "the target (method name) is empty" },
      { function() return hub:send_to_user("", "t", {}) end, "the user id is empty" },
      { function() return hub:send_to_group("   ", "t", {}) end, "the group name is empty or blank" },
      { function() return hub:send_to_group(("g"):rep(1025), "t", {}) end, "at most 1024 are allowed" },
      { function() return hub:send_to_connection("", "t", {}) end, "the connection id is empty" },
      { function() return hub:send_to_all("t", {}, { excluded = { "" } }) end,
        "excluded[1] is an empty connection id" },
      { function() return hub:add_user_to_group("u", "g", { ttl = -1 }) end, "options.ttl must be 0 or more seconds" },
      { function() return hub:generate_token({ lifetime = 0 }) end,
        "options.lifetime must be from 1 second to 1 year" },
      { function() return hub:execute({}) end, "the command list is empty" },
      { function() return hub:user_in_group("u", "") end, "the group name is empty or blank" },
    }
    for i, case in ipairs(cases) do
      local r, err = case[1]()
      assert(r == nil, "case " .. i .. " did not fail")
      assert.is_true(signalr.is_error(err))
      assert.equal("invalid_argument", err.kind)
      assert(err.message:find(case[2], 1, true), "case " .. i .. ": " .. err.message)
    end
    -- the same, one by one with their messages
    local r, err = hub:send_to_all("", {})
    assert.is_nil(r)
    assert.equal("invalid_argument", err.kind)
    assert.equal("send_to_all: the target (method name) is empty", tostring(err))
    r, err = hub:send_to_group(("g"):rep(1025), "t", {})
    assert.is_nil(r)
    assert.matches("the group name is 1025 characters long; at most 1024 are allowed", err.message, 1, true)
    r, err = hub:execute({})
    assert.is_nil(r)
    assert.equal("execute: the command list is empty", err.message)
  end)

  it("refuses a message over 1 MB before sending anything", function()
    -- the endpoint (127.0.0.1:9) refuses connections: an attempt would say "could not connect"
    local big = ("x"):rep(1024 * 1024)
    local r, err = hub:send_to_all("t", { big })
    assert.is_nil(r)
    assert.equal("invalid_argument", err.kind)
    assert.matches("more than 1 MB of JSON; the service accepts at most 1 MB (1048576 bytes)", err.message, 1, true)
    -- just under the limit is sent (and fails to connect, proving it was attempted)
    local fits = ("x"):rep(1024 * 1024 - 64)
    r, err = hub:send_to_all("t", { fits })
    assert.is_nil(r)
    assert.equal("network", err.kind)
    assert.matches("could not connect", err.message, 1, true)
  end)
end)
