-- REST requests as the ops build them, and answers mapped to results and error objects:
-- checked through a scripted driver (svc:set_driver), so every byte is visible. The
-- access-key JWT is verified with luaossl (spec/helpers/token.lua), not the SDK.
local signalr = require "signalr"
local cjson = require "cjson"
local token = require "spec.helpers.token"
local scripted = require "spec.helpers.scripted_driver"

local KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
local CS = "Endpoint=https://x.service.signalr.net;AccessKey=" .. KEY .. ";Version=1.0;"
local NOW = 1700000000

local function service(opts)
  local o = { connection_string = CS, clock = function() return NOW end }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(signalr.new(o))
end

local function bearer(req)
  return assert(req.headers.Authorization:match("^Bearer (.+)$"))
end

describe("REST requests", function()
  it("sends a broadcast as the management SDK does: URL, JWT with aud up to api-version, body", function()
    local svc = service()
    local d = scripted.install(svc, { { status = 202 } })
    local hub = svc:hub("Chat")
    assert.is_true(hub:send_to_all("newMessage", { "alice", 1, { x = true } }, { excluded = { "c 1", "c/2" } }))
    local req = d.requests[1]
    assert.equal("POST", req.method)
    assert.equal("https://x.service.signalr.net/api/hubs/chat/:send?api-version=2022-06-01" ..
      "&excluded=c%201&excluded=c%2F2", req.url)
    assert.equal("application/json", req.headers["Content-Type"])
    assert.same({ target = "newMessage", arguments = { "alice", 1, { x = true } } }, cjson.decode(req.body))
    local jwt = bearer(req)
    assert.is_true(token.verify(jwt, KEY))
    local header, claims = token.decode(jwt)
    assert.equal("HS256", header.alg)
    assert.equal("https://x.service.signalr.net/api/hubs/chat/:send?api-version=2022-06-01", claims.aud)
    assert.equal(NOW, claims.iat)
    assert.equal(NOW + 3600, claims.exp)
    assert.matches("^.+_%x+$", claims.nameid)
  end)

  it("puts the application in the query (lower-cased), keeps the port in the URL, not in aud", function()
    local svc = assert(signalr.new { connection_string = "Endpoint=https://x.example:8443;AccessKey=" .. KEY ..
      ";Version=1.0;", application = "MyApp", clock = function() return NOW end })
    local d = scripted.install(svc, { { status = 202 } })
    assert.is_true(svc:hub("chat"):send_to_user("ali ce/ü", "t", {}))
    local path = "/api/hubs/chat/users/ali%20ce%2F%C3%BC/:send?application=myapp&api-version=2022-06-01"
    assert.equal("https://x.example:8443" .. path, d.requests[1].url)
    local _, claims = token.decode(bearer(d.requests[1]))
    assert.equal("https://x.example" .. path, claims.aud)
  end)

  it("builds every operation's method, path and query", function()
    local svc = service()
    local hub = svc:hub("chat")
    local B = "https://x.service.signalr.net/api/hubs/chat"
    local V = "api-version=2022-06-01"
    local cases = {
      { function() return hub:send_to_group("g 1", "t", {}, { excluded = { "c1" } }) end,
        "POST", B .. "/groups/g%201/:send?" .. V .. "&excluded=c1", 202, true },
      { function() return hub:send_to_connection("c1", "t", {}) end,
        "POST", B .. "/connections/c1/:send?" .. V, 202, true },
      { function() return hub:close_all_connections({ reason = "bye now", excluded = { "a", "b" } }) end,
        "POST", B .. "/:closeConnections?" .. V .. "&excluded=a&excluded=b&reason=bye%20now", 204, true },
      { function() return hub:close_user_connections("u1") end,
        "POST", B .. "/users/u1/:closeConnections?" .. V, 204, true },
      { function() return hub:close_group_connections("g1", { reason = "r" }) end,
        "POST", B .. "/groups/g1/:closeConnections?" .. V .. "&reason=r", 204, true },
      { function() return hub:close_connection("c1", { reason = "r" }) end,
        "DELETE", B .. "/connections/c1?" .. V .. "&reason=r", 200, true },
      { function() return hub:connection_exists("c1") end, "HEAD", B .. "/connections/c1?" .. V, 200, true },
      { function() return hub:user_exists("u1") end, "HEAD", B .. "/users/u1?" .. V, 200, true },
      { function() return hub:group_exists("g1") end, "HEAD", B .. "/groups/g1?" .. V, 200, true },
      { function() return hub:add_connection_to_group("c1", "g1") end,
        "PUT", B .. "/groups/g1/connections/c1?" .. V, 200, true },
      { function() return hub:remove_connection_from_group("c1", "g1") end,
        "DELETE", B .. "/groups/g1/connections/c1?" .. V, 200, true },
      { function() return hub:remove_connection_from_all_groups("c1") end,
        "DELETE", B .. "/connections/c1/groups?" .. V, 200, true },
      { function() return hub:add_user_to_group("u1", "g1", { ttl = 0 }) end,
        "PUT", B .. "/users/u1/groups/g1?" .. V .. "&ttl=0", 200, true },
      { function() return hub:add_user_to_group("u1", "g1") end, "PUT", B .. "/users/u1/groups/g1?" .. V, 200, true },
      { function() return hub:remove_user_from_group("u1", "g1") end,
        "DELETE", B .. "/users/u1/groups/g1?" .. V, 204, true },
      { function() return hub:user_in_group("u1", "g1") end, "HEAD", B .. "/users/u1/groups/g1?" .. V, 200, true },
      { function() return hub:remove_user_from_all_groups("u1") end,
        "DELETE", B .. "/users/u1/groups?" .. V, 204, true },
      { function() return hub:execute({ { type = "JoinGroup", group = "g" } }, { filter = "userId eq 'a b'" }) end,
        "POST", B .. "/:execute?api-version=2024-12-01&filter=userId%20eq%20%27a%20b%27", 202, true },
    }
    for i, case in ipairs(cases) do
      local d = scripted.install(svc, { { status = case[4] } })
      local r = case[1]()
      assert(r == case[5], "case " .. i .. " returned " .. tostring(r))
      assert.equal(case[2], d.requests[1].method)
      assert.equal(case[3], d.requests[1].url)
      assert.is_true(token.verify(bearer(d.requests[1]), KEY))
      if case[2] ~= "POST" then assert.is_nil(d.requests[1].body) end
    end
  end)

  it("encodes execute commands in the service's shape", function()
    local svc = service()
    local d = scripted.install(svc, { { status = 202 } })
    assert.is_true(svc:hub("chat"):execute({
      { type = "SendMessage", target = "hello", arguments = { 1, "two" } },
      { type = "JoinGroup", group = "room" },
      { type = "LeaveGroup", group = "old" },
      { type = "CloseConnection", reason = "done" },
    }))
    assert.same({
      { type = "SendMessage", message = { target = "hello", arguments = { 1, "two" } } },
      { type = "JoinGroup", group = "room" },
      { type = "LeaveGroup", group = "old" },
      { type = "CloseConnection", reason = "done" },
    }, cjson.decode(d.requests[1].body))
  end)

  it("returns false for a 404 with a does-not-exist code, and an error for other 404s", function()
    local svc = service()
    local hub = svc:hub("chat")
    local codes = { "Warning.Connection.NotExisted", "Warning.User.NotExisted", "Warning.Group.NotExisted",
      "Info.User.NotInGroup", "Error.Connection.NotExisted" }
    for _, code in ipairs(codes) do
      scripted.install(svc, { { status = 404, headers = { ["x-ms-error-code"] = code } } })
      assert.is_false(hub:user_in_group("u", "g"))
    end
    scripted.install(svc, { { status = 404, headers = { ["x-ms-error-code"] = "Error.Connection.NotExisted" } } })
    assert.is_false(hub:add_connection_to_group("gone", "g"))
    -- closing a connection that is already gone did what was asked
    scripted.install(svc, { { status = 404, headers = { ["x-ms-error-code"] = "Warning.Connection.NotExisted" } } })
    assert.is_true(hub:close_connection("gone"))
    -- a 404 without a code: the endpoint is wrong
    scripted.install(svc, { { status = 404, body = "" } })
    local r, err = hub:user_exists("u")
    assert.is_nil(r)
    assert.equal("not_found", err.kind)
    assert.equal(404, err.status)
    assert.equal("unable to access SignalR service, check the endpoint", err.hint)
    -- a send answered 404 with a code is still an error (it is not an existence check)
    scripted.install(svc, { { status = 404, headers = { ["x-ms-error-code"] = "Warning.User.NotExisted" } } })
    r, err = hub:send_to_user("u", "t", {})
    assert.is_nil(r)
    assert.equal("not_found", err.kind)
    assert.equal("Warning.User.NotExisted", err.code)
  end)

  it("maps failures to error objects: kind, status, code, message, hint; one sentence, no secret", function()
    local svc = service({ max_retries = 0 })
    local hub = svc:hub("chat")
    local body = cjson.encode { code = "InvalidArgument", message = "Invalid group name.", target = "group" }
    local cases = {
      { { status = 400, body = body }, "invalid_argument", "InvalidArgument",
        "send_to_group: POST https://x.service.signalr.net/api/hubs/chat/groups/g/:send answered 400: " ..
        "Invalid group name" },
      { { status = 400, headers = { ["x-ms-error-code"] = "Custom.Code" }, body = "plain text reason" },
        "invalid_argument", "Custom.Code", "answered 400: plain text reason" },
      { { status = 401, body = "" }, "unauthorized", nil, "answered 401", "AccessKey" },
      { { status = 403, body = "" }, "forbidden", nil, "answered 403",
        "'SignalR REST API Owner' or 'SignalR Service Owner' role on the resource, for data action " ..
        "Microsoft.SignalRService/SignalR/group/send/action; new role assignments can take up to 30 minutes" },
      { { status = 413, body = "" }, "invalid_argument", nil, "answered 413", "1 MB" },
      { { status = 429, headers = { ["retry-after"] = "3600" }, body = "" }, "throttled", nil, "answered 429",
        "retry after 3600 seconds" },
      { { status = 500, body = "" }, "service_error", nil, "answered 500" },
      { { error = "timeout", message = "Operation timed out after 30000 milliseconds" }, "timeout", nil,
        "send_to_group: POST https://x.service.signalr.net/api/hubs/chat/groups/g/:send timed out" },
      { { error = "connect", message = "Connection refused" }, "network", nil,
        "could not connect: Connection refused" },
      { { error = "tls", message = "certificate verify failed" }, "network", nil,
        "failed TLS verification", "ca_file" },
    }
    for i, case in ipairs(cases) do
      scripted.install(svc, { case[1] })
      local r, err = hub:send_to_group("g", "t", { "secret-payload" }, { excluded = { "query-value" } })
      assert(r == nil, "case " .. i)
      assert.is_true(signalr.is_error(err))
      assert.equal(case[2], err.kind)
      assert.equal(case[1].status, err.status)
      assert.equal(case[3], err.code)
      assert(err.message:find(case[4], 1, true), "case " .. i .. ": " .. err.message)
      if case[5] then
        assert(err.hint and err.hint:find(case[5], 1, true), "case " .. i .. ": " .. tostring(err.hint))
      end
      local text = tostring(err)
      assert.equal(err.message .. (err.hint and (" (" .. err.hint .. ")") or ""), text)
      assert.is_nil(text:find(KEY, 1, true))
      assert.is_nil(text:find("query-value", 1, true)) -- URLs in messages drop the query
      assert.is_nil(text:find("api-version", 1, true))
      assert.is_nil(text:find("eyJ", 1, true))         -- no token
      assert.is_nil(text:find("\n", 1, true))
    end
    scripted.install(svc, { { status = 429, headers = { ["retry-after"] = "3600" } } })
    local _, err = hub:send_to_all("t", {})
    assert.equal(3600, err.retry_after)
  end)

  it("returns generate_token's token, its expiry from the JWT, and the client URL", function()
    local svc = service()
    local minted = token.b64url_encode('{"alg":"HS256","typ":"JWT"}') .. "." ..
      token.b64url_encode(cjson.encode { exp = NOW + 600, aud = "x" }) .. ".c2ln"
    local d = scripted.install(svc, { { status = 200, body = cjson.encode { token = minted } } })
    local tok, exp, url = svc:hub("chat"):generate_token { user_id = "bob", lifetime = 590, roles = { "a", "b" },
      groups = "g1" }
    assert.equal(minted, tok)
    assert.equal(NOW + 600, exp)
    assert.equal("https://x.service.signalr.net/client/?hub=chat", url)
    assert.equal("POST", d.requests[1].method)
    assert.equal("https://x.service.signalr.net/api/hubs/chat/:generateToken?api-version=2024-12-01&userId=bob" ..
      "&minutesToExpire=10&role=a&role=b&group=g1", d.requests[1].url)
    scripted.install(svc, { { status = 200, body = "{}" } })
    local r, err = svc:hub("chat"):generate_token()
    assert.is_nil(r)
    assert.equal("service_error", err.kind)
    assert.matches("without a token", err.message, 1, true)
  end)

  it("lists a group's connections page by page, following nextLink only on our own host", function()
    local svc = service()
    local hub = svc:hub("chat")
    local d = scripted.install(svc, {
      { status = 200, body = cjson.encode { value = { { connectionId = "c1", userId = "u1" }, { connectionId = "c2" } },
        nextLink = "https://elsewhere.example/api/hubs/chat/groups/g/connections" ..
          "?api-version=2024-12-01&maxpagesize=2&continuationToken=XYZ" } },
      { status = 200, body = cjson.encode { value = { { connectionId = "c3", userId = "u3" } } } },
    })
    local pages = {}
    for page, err in hub:group_connections("g", { page_size = 2, top = 10 }) do
      assert.is_nil(err)
      pages[#pages + 1] = page
    end
    assert.same({ { { connection_id = "c1", user_id = "u1" }, { connection_id = "c2" } },
      { { connection_id = "c3", user_id = "u3" } } }, pages)
    assert.equal("GET", d.requests[1].method)
    local list_url = "https://x.service.signalr.net/api/hubs/chat/groups/g/connections?api-version=2024-12-01"
    assert.equal(list_url .. "&maxpagesize=2&top=10", d.requests[1].url)
    assert.equal(list_url .. "&maxpagesize=2&continuationToken=XYZ", d.requests[2].url)
    local _, claims = token.decode(bearer(d.requests[2]))
    assert.equal("https://x.service.signalr.net/api/hubs/chat/groups/g/connections?api-version=2024-12-01", claims.aud)

    -- an empty group yields no page; a failure yields false, err once and ends the loop
    scripted.install(svc, { { status = 200, body = '{"value":[]}' } })
    local n = 0
    for _ in hub:group_connections("empty") do n = n + 1 end
    assert.equal(0, n)
    scripted.install(svc, { { status = 403, body = "" } })
    local seen = {}
    for page, err in hub:group_connections("g") do seen[#seen + 1] = { page, err } end
    assert.equal(1, #seen)
    assert.is_false(seen[1][1])
    assert.equal("forbidden", seen[1][2].kind)
  end)

  it("returns invoke's result as a Lua value (signalr.null for null)", function()
    local svc = service()
    local hub = svc:hub("chat")
    local d = scripted.install(svc, { { status = 200, body = '{"result":{"sum":3,"list":[1,2]},"protocol":"json"}' } })
    local r = hub:invoke("c1", "add", { 1, 2 })
    assert.same({ sum = 3, list = { 1, 2 } }, r)
    assert.equal("[1,2]", signalr.json_encode(r.list))
    assert.equal("https://x.service.signalr.net/api/hubs/chat/connections/c1/:invoke?api-version=2024-12-01",
      d.requests[1].url)
    assert.same({ target = "add", arguments = { 1, 2 } }, cjson.decode(d.requests[1].body))
    scripted.install(svc, { { status = 200, body = '{"result":null}' } })
    assert.equal(signalr.null, hub:invoke("c1", "noop"))
    scripted.install(svc, { { status = 404, headers = { ["x-ms-error-code"] = "Error.Connection.NotExisted" } } })
    local r2, err = hub:invoke("gone", "add", {})
    assert.is_nil(r2)
    assert.equal("not_found", err.kind)
  end)

  it("sends an Entra token as the bearer and tries once more with a new one after a 401", function()
    local cred = signalr.credential.static("entra-token-1")
    local svc = assert(signalr.new { endpoint = "https://x.service.signalr.net", credential = cred })
    local d = scripted.install(svc, { { status = 202 } })
    assert.is_true(svc:hub("chat"):send_to_all("t", {}))
    assert.equal("Bearer entra-token-1", d.requests[1].headers.Authorization)
    d = scripted.install(svc, { { status = 401 }, { status = 401 } })
    local r, err = svc:hub("chat"):user_exists("u")
    assert.is_nil(r)
    assert.equal(2, #d.requests)
    assert.equal("unauthorized", err.kind)
    assert.matches("Microsoft Entra token", err.hint, 1, true)
    assert.is_nil(tostring(err):find("entra-token-1", 1, true))
  end)

  it("runs a batch through a Lua driver one call after the other, results in queue order", function()
    local svc = service()
    local d = scripted.install(svc, { { status = 202 }, { status = 404, headers = { ["x-ms-error-code"] =
      "Warning.User.NotExisted" } }, { status = 403 } })
    local b = svc:batch { max_in_flight = 4 }
    local hub = b:hub("chat")
    assert.equal(1, hub:send_to_all("t", {}))
    assert.equal(2, hub:user_exists("nobody"))
    assert.equal(3, hub:send_to_user("u", "t", {}))
    assert.equal(3, #b)
    local results = b:run()
    assert.equal(0, #b)
    assert.equal(3, #d.requests)
    assert.same({ true, n = 1 }, results[1])
    assert.same({ false, n = 1 }, results[2])
    assert.is_nil(results[3][1])
    assert.equal("forbidden", results[3].err.kind)
    assert.equal(results[3][2], results[3].err)
    -- an empty batch runs to an empty list; a batch hub cannot list pages
    assert.same({}, b:run())
    assert.has_error(function() hub:group_connections("g") end)
  end)

  it("encodes argument lists the same whichever way the table was built", function()
    local svc = service()
    local bodies = {}
    svc:set_driver(function(op)
      local _, req = op:step(NOW)
      bodies[#bodies + 1] = cjson.decode(req.body).arguments
      assert.equal("done", (op:step(NOW, { status = 202, headers = {}, body = "" })))
      return true
    end)
    local hub = svc:hub("chat")
    local backwards = {}
    for i = 3, 1, -1 do backwards[i] = i * 10 end -- built from the end: keys live in the hash part
    local cases = {
      { { 1, "a", { x = 1 }, { 2, 3 } }, { 1, "a", { x = 1 }, { 2, 3 } } },
      { backwards, { 10, 20, 30 } },
      { { n = 3, 1 }, { 1, cjson.null, cjson.null } },
      { { n = 0, 1 }, {} },
      { setmetatable({ 1, 2 }, { __index = function() return nil end }), { 1, 2 } },
      { signalr.array {}, {} },
      { {}, {} },
    }
    for i, case in ipairs(cases) do
      assert.is_true(hub:send_to_all("t", case[1]))
      assert.same(case[2], bodies[i], "case " .. i)
    end
    local errors = {
      { { print, x = 1 }, "args mixes array items and named keys" },
      { { 1, nil, 3 }, "args is a sparse array" },
      { { [2] = 1 }, "args is a sparse array" },
      { { 1, { print } }, "args[2][1] is a function" },
      { { 1, "\255" }, "args[2] is a string that is not valid UTF-8" },
    }
    for _, case in ipairs(errors) do
      local ok, msg = pcall(hub.send_to_all, hub, "t", case[1])
      assert.is_false(ok)
      assert.matches(case[2], msg, 1, true)
    end
  end)

  it("a batch keeps its own copy of each queued call: strings built then dropped still go out", function()
    local svc = service()
    local answers = {}
    for i = 1, 40 do answers[i] = { status = 202 } end
    local d = scripted.install(svc, answers)
    local b = svc:batch()
    for i = 1, 20 do
      -- every string here is garbage once queued: ids, hub name, excluded list, arguments
      b:hub(("Hub" .. i):lower()):send_to_user(("user " .. i):rep(2), "t" .. i, { ("x"):rep(i), i })
      b:hub("h"):send_to_group("g/" .. i, "t", {}, { excluded = { "c" .. i, "d" .. i } })
    end
    collectgarbage("collect")
    collectgarbage("collect")
    local results = b:run()
    assert.equal(40, #results)
    for i = 1, 20 do
      local user, group = d.requests[2 * i - 1], d.requests[2 * i]
      local id = ("user%20" .. i):rep(2)
      assert.equal("https://x.service.signalr.net/api/hubs/hub" .. i .. "/users/" .. id ..
        "/:send?api-version=2022-06-01", user.url)
      assert.same({ target = "t" .. i, arguments = { ("x"):rep(i), i } }, cjson.decode(user.body))
      local _, claims = token.decode(bearer(user))
      assert.equal(user.url, claims.aud)
      assert.equal("https://x.service.signalr.net/api/hubs/h/groups/g%2F" .. i ..
        "/:send?api-version=2022-06-01&excluded=c" .. i .. "&excluded=d" .. i, group.url)
      assert.same({ true, n = 1 }, results[2 * i - 1])
      assert.same({ true, n = 1 }, results[2 * i])
    end
  end)

  it("a driver may queue into and run the batch it is running: each run gets its own calls", function()
    local svc = service()
    local b = svc:batch()
    local bhub = b:hub("chat")
    local nested, inner = false, nil
    local urls = {}
    svc:set_driver(function(op)
      local kind, req = op:step(NOW)
      assert.equal("request", kind)
      urls[#urls + 1] = req.url
      if not nested then
        nested = true
        bhub:user_exists("nested")
        inner = b:run()
      end
      kind = op:step(NOW, { status = 202, headers = {}, body = "" })
      assert.equal("done", kind)
      return true
    end)
    bhub:send_to_user("a", "t", {})
    bhub:send_to_user("b", "t", {})
    local outer = b:run()
    assert.equal(2, #outer)
    assert.same({ true, n = 1 }, outer[1])
    assert.same({ true, n = 1 }, outer[2])
    assert.equal(1, #inner)
    assert.same({ true, n = 1 }, inner[1])
    assert.equal(3, #urls)
    assert.matches("/users/a/:send", urls[1], 1, true)
    assert.matches("/users/nested?", urls[2], 1, true)
    assert.matches("/users/b/:send", urls[3], 1, true)
    assert.equal(0, #b)
  end)
end)
