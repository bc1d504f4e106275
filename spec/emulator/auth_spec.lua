-- Authorization of the data plane over real HTTPS: access-key tokens (both keys, HS256 and
-- HS512, aud with and without query, expiry), local auth off and on, temporary keys and
-- their expiry on the emulator clock, Entra tokens from the admin API checked against RBAC
-- for every REST operation (one custom role per data action, allowed and denied).
local emulator = require "spec.helpers.emulator"
local hub_client = require "spec.helpers.hub_client"
local signing = require "spec.helpers.signing"
local jwt = require "signalr.emulator.jwt"
local cjson = require "cjson"

local PREFIX = "Microsoft.SignalRService/SignalR/"

local function new_world(settings)
  local emu = emulator.start { config = { settings = settings } }
  return emu, emu.resources.signalr1
end

local function call(emu, res, method, path, opts)
  opts = opts or {}
  local url = res.endpoint .. path .. (opts.query and ("?" .. opts.query) or "?api-version=2024-12-01")
  local headers = { ["content-type"] = "application/json" }
  if opts.token then headers.authorization = (opts.scheme or "Bearer") .. " " .. opts.token end
  local status, h, body = emu:request { method = method, url = url, headers = headers, body = opts.body }
  assert(status, h)
  return status, h, body
end

local function entra_token(emu, principal_id, tenant_id)
  local status, body = emu:admin("POST", "/admin/tokens", { tenant_id = tenant_id or emu.world.tenant_id,
    principal_id = principal_id })
  assert.equal(200, status, cjson.encode(body))
  return body.access_token
end

local SEND = '{"target":"t"}'

describe("access-key tokens", function()
  local emu, res
  setup(function() emu, res = new_world() end)
  teardown(function() emu:stop() end)

  local path = "/api/hubs/chat/:send"
  local function send(token, query)
    return call(emu, res, "POST", path, { token = token, body = SEND, query = query })
  end

  it("accepts either access key, HS256 and HS512", function()
    for _, k in ipairs(emu.world.access_keys) do
      assert.equal(202, send(signing.rest(k, res.endpoint .. path)))
      assert.equal(202, send(signing.rest(k, res.endpoint .. path, { alg = "HS512" })))
    end
  end)

  it("accepts aud with the full query, with the SDK's partial query, and without port", function()
    local k = emu.world.access_keys[1]
    local q = "excluded=x&api-version=2022-06-01"
    assert.equal(202, send(signing.rest(k, res.endpoint .. path .. "?" .. q), q))
    assert.equal(202, send(signing.rest(k, res.endpoint .. path .. "?api-version=2022-06-01"), q))
    local no_port = res.endpoint:gsub(":%d+$", "")
    assert.equal(202, send(signing.rest(k, no_port .. path .. "?api-version=2022-06-01"), q))
  end)

  it("accepts a token that starts a little ahead of its clock (the signer's clock is its own)", function()
    local k = emu.world.access_keys[1]
    assert.equal(202, send(signing.rest(k, res.endpoint .. path, { nbf = os.time() + 2 })))
    assert.equal(202, send(signing.rest(k, res.endpoint .. path, { nbf = os.time() + 240 })))
  end)

  it("refuses a wrong audience, key, expiry, nbf, alg or shape with 401 and a challenge", function()
    local k = emu.world.access_keys[1]
    local aud = res.endpoint .. path
    local now = os.time()
    local cases = {
      { "other path", signing.rest(k, res.endpoint .. "/api/hubs/other/:send") },
      { "other query value", signing.rest(k, aud .. "?api-version=2024-01-01") },
      { "other host", signing.rest(k, "https://example.com" .. path) },
      { "wrong key", signing.rest("not-the-access-key-of-this-resource", aud) },
      { "expired", signing.rest(k, aud, { now = now - 7200, lifetime = 60 }) },
      { "not yet valid", signing.rest(k, aud, { nbf = now + 600 }) },
      { "no exp", signing.rest(k, aud, { no_exp = true }) },
      { "two parts", "abc.def" },
      { "bad base64", "a*b.c*d.e*f" },
      { "alg none", jwt.base64url_encode('{"alg":"none"}') .. "." ..
        jwt.base64url_encode(cjson.encode { aud = aud, exp = now + 60 }) .. "." },
      { "RS256 from nowhere", jwt.encode({ alg = "RS256", typ = "JWT" }, { aud = aud, exp = now + 60 },
        require "openssl.pkey".new { type = "RSA", bits = 1024 }) },
      { "huge", ("a"):rep(6000) .. "." .. ("b"):rep(6000) .. ".c" },
    }
    for _, case in ipairs(cases) do
      local status, h, body = send(case[2])
      assert.equal(401, status, case[1])
      assert.matches('^Bearer error="invalid_token"', h:get("www-authenticate"), case[1])
      local b = cjson.decode(body)
      assert.equal("Unauthorized", b.code, case[1])
      assert.falsy(body:find(k, 1, true), case[1])
    end
    local status, h = call(emu, res, "POST", path, { body = SEND })
    assert.equal(401, status)
    assert.truthy(h:get("www-authenticate"))
    assert.equal(401, (call(emu, res, "POST", path, { body = SEND, scheme = "Basic", token = "dXNlcjpwYXNz" })))
    -- headers over 16 KB never reach a handler
    status = call(emu, res, "POST", path, { body = SEND, token = ("a"):rep(17000) })
    assert.is_true(status == 431 or status == 400, tostring(status))
    assert.equal(200, (call(emu, res, "GET", "/api/health", { query = "" })))
  end)

  it("refuses a token that expired on the emulator clock", function()
    local k = emu.world.access_keys[1]
    local token = signing.rest(k, res.endpoint .. path, { lifetime = 60 })
    assert.equal(202, send(token))
    assert.equal(200, (emu:admin("POST", "/admin/clock", { advance = 61 })))
    local status, _, body = send(token)
    assert.equal(401, status)
    assert.matches("expired", cjson.decode(body).message)
  end)
end)

describe("local auth switch", function()
  local emu, res
  setup(function() emu, res = new_world() end)
  teardown(function() emu:stop() end)

  it("deletes the keys for good when disabled and makes new ones when enabled", function()
    local path = "/api/hubs/chat/:send"
    local old = emu.world.access_keys
    local token = signing.rest(old[1], res.endpoint .. path)
    local client_token = signing.client(old[2], res.endpoint, "chat", { user = "u" })
    assert.equal(202, call(emu, res, "POST", path, { token = token, body = SEND }))

    local status, view = emu:admin("POST", "/admin/resources/signalr1/local-auth", { enabled = false })
    assert.equal(200, status)
    assert.is_false(view.local_auth)
    assert.same({}, view.access_keys)
    assert.is_nil(view.connection_strings.access_key)
    local _, body
    status, _, body = call(emu, res, "POST", path, { token = token, body = SEND })
    assert.equal(401, status)
    assert.matches("local authentication is disabled", cjson.decode(body).message)
    local c, err, neg_status = hub_client.connect { endpoint = res.endpoint, hub = "chat", token = client_token,
        ca_file = emu.ca_file }
    assert.is_nil(c, err)
    assert.equal(401, neg_status)
    -- Entra still works
    assert.equal(202, call(emu, res, "POST", path, { token = entra_token(emu, emu.world.app_sp), body = SEND }))

    status, view = emu:admin("POST", "/admin/resources/signalr1/local-auth", { enabled = true })
    assert.equal(200, status)
    assert.is_true(view.local_auth)
    assert.equal(2, #view.access_keys)
    assert.are_not.equal(old[1], view.access_keys[1])
    assert.are_not.equal(old[2], view.access_keys[2])
    assert.matches("AccessKey=" .. view.access_keys[1]:gsub("%p", "%%%0"), view.connection_strings.access_key)
    assert.equal(401, call(emu, res, "POST", path, { token = token, body = SEND }))
    assert.equal(202, call(emu, res, "POST", path, { token = signing.rest(view.access_keys[2],
        res.endpoint .. path), body = SEND }))
    assert.equal(400, (emu:admin("POST", "/admin/resources/signalr1/local-auth", { enabled = "no" })))
    assert.equal(404, (emu:admin("POST", "/admin/resources/nope/local-auth", { enabled = true })))
  end)
end)

describe("temporary access keys", function()
  local emu, res
  setup(function() emu, res = new_world { temp_key_lifetime = 600 } end)
  teardown(function() emu:stop() end)

  local function access_key(token, path, query)
    return call(emu, res, "GET", path or "/api/v1/auth/accessKey", { token = token, query = query or "" })
  end

  it("issues {KeyId, AccessKey} to a principal holding auth/accessKey/action, on both paths", function()
    local token = entra_token(emu, emu.world.app_sp)
    local status, _, body = access_key(token)
    assert.equal(200, status)
    local k = cjson.decode(body)
    assert.is_string(k.KeyId)
    assert.is_string(k.AccessKey)
    status, _, body = access_key(token, "/api/auth/accessKey", "api-version=2023-07-01")
    assert.equal(200, status)
    assert.are_not.equal(k.KeyId, cjson.decode(body).KeyId)
    assert.equal(200, (access_key(token, "/api/auth/accessKey", "api-version=2024-12-01")))
    assert.equal(400, (access_key(token, "/api/auth/accessKey", "api-version=2022-06-01")))
    assert.equal(400, (access_key(token, "/api/auth/accessKey", "")))
  end)

  it("refuses access-key tokens, missing roles and other tenants", function()
    local status, _, body = access_key(signing.rest(emu.world.access_keys[1], res.endpoint .. "/api/v1/auth/accessKey"))
    assert.equal(401, status)
    assert.matches("Microsoft Entra ID", cjson.decode(body).message)
    status, _, body = access_key(entra_token(emu, emu.world.reader_sp))
    assert.equal(403, status)
    local b = cjson.decode(body)
    assert.equal("Forbidden", b.code)
    assert.equal(PREFIX .. "auth/accessKey/action", b.target)
    assert.matches("SignalR App Server", b.message)
    status = access_key(entra_token(emu, emu.world.other_user, emu.world.other_tenant_id))
    assert.equal(401, status)
    assert.equal(401, (access_key(nil)))
  end)

  it("signs client tokens by kid, also with local auth off, until the key expires", function()
    local status, _, body = access_key(entra_token(emu, emu.world.app_sp))
    assert.equal(200, status)
    local k = cjson.decode(body)
    assert.equal(200, (emu:admin("POST", "/admin/resources/signalr1/local-auth", { enabled = false })))
    local token = signing.client(k.AccessKey, res.endpoint, "chat", { user = "temp", kid = k.KeyId })
    local c = assert(hub_client.connect { endpoint = res.endpoint, hub = "chat", token = token, ca_file = emu.ca_file })
    c:close()
    -- REST tokens signed with the temporary key work too (the SDK's older transports do this)
    local path = "/api/hubs/chat/:send"
    assert.equal(202, call(emu, res, "POST", path, { body = SEND,
      token = signing.rest(k.AccessKey, res.endpoint .. path, { kid = k.KeyId }) }))
    -- a wrong key under a real kid fails
    local forged = signing.client("forged-key-forged-key-forged-key", res.endpoint, "chat", { kid = k.KeyId })
    local _, _, neg = hub_client.connect { endpoint = res.endpoint, hub = "chat", token = forged,
        ca_file = emu.ca_file }
    assert.equal(401, neg)
    assert.equal(200, (emu:admin("POST", "/admin/clock", { advance = 601 })))
    local _, clock = emu:admin("GET", "/admin/clock")
    token = signing.client(k.AccessKey, res.endpoint, "chat", { user = "temp", kid = k.KeyId, now = clock.now })
    local c2, err, st = hub_client.connect { endpoint = res.endpoint, hub = "chat", token = token,
        ca_file = emu.ca_file }
    assert.is_nil(c2)
    assert.equal(401, st)
    assert.matches("expired", err)
    assert.equal(200, (emu:admin("POST", "/admin/resources/signalr1/local-auth", { enabled = true })))
  end)

  it("follows temp_key_lifetime changes from the admin API", function()
    assert.equal(200, (emu:admin("PUT", "/admin/settings", { temp_key_lifetime = 5 })))
    local _, _, body = access_key(entra_token(emu, emu.world.app_sp))
    local k = cjson.decode(body)
    assert.equal(200, (emu:admin("POST", "/admin/clock", { advance = 6 })))
    local _, clock = emu:admin("GET", "/admin/clock")
    local token = signing.client(k.AccessKey, res.endpoint, "chat", { kid = k.KeyId, now = clock.now })
    local _, _, st = hub_client.connect { endpoint = res.endpoint, hub = "chat", token = token, ca_file = emu.ca_file }
    assert.equal(401, st)
  end)

  it("refuses an Entra token that expired on the emulator clock", function()
    local token = entra_token(emu, emu.world.app_sp)
    local _, settings = emu:admin("GET", "/admin/settings")
    assert.equal(200, (emu:admin("POST", "/admin/clock", { advance = settings.token_lifetime + 1 })))
    local status, _, body = access_key(token)
    assert.equal(401, status)
    assert.matches("expired", cjson.decode(body).message)
  end)
end)

-- Each REST operation and the data action it needs (reference/rest-api.md).
local OPERATIONS = {
  { "POST", "/api/hubs/h/:send", "hub/send/action", SEND },
  { "POST", "/api/hubs/h/users/u/:send", "user/send/action", SEND },
  { "POST", "/api/hubs/h/groups/g/:send", "group/send/action", SEND },
  { "POST", "/api/hubs/h/connections/c/:send", "clientConnection/send/action", SEND },
  { "POST", "/api/hubs/h/:closeConnections", "clientConnection/write" },
  { "POST", "/api/hubs/h/users/u/:closeConnections", "clientConnection/write" },
  { "POST", "/api/hubs/h/groups/g/:closeConnections", "clientConnection/write" },
  { "DELETE", "/api/hubs/h/connections/c", "clientConnection/write" },
  { "HEAD", "/api/hubs/h/connections/c", "clientConnection/read" },
  { "HEAD", "/api/hubs/h/users/u", "user/read" },
  { "HEAD", "/api/hubs/h/groups/g", "group/read" },
  { "PUT", "/api/hubs/h/groups/g/connections/c", "group/write" },
  { "DELETE", "/api/hubs/h/groups/g/connections/c", "group/write" },
  { "DELETE", "/api/hubs/h/connections/c/groups", "group/write" },
  { "PUT", "/api/hubs/h/users/u/groups/g", "user/write" },
  { "DELETE", "/api/hubs/h/users/u/groups/g", "user/write" },
  { "HEAD", "/api/hubs/h/users/u/groups/g", "group/read" },
  { "GET", "/api/hubs/h/users/u/groups/g", "group/read" },
  { "DELETE", "/api/hubs/h/users/u/groups", "user/write" },
  { "POST", "/api/hubs/h/:generateToken", "auth/clientToken/action" },
  { "GET", "/api/hubs/h/groups/g/connections", "group/read" },
  { "POST", "/api/hubs/h/connections/c/:invoke", "clientConnection/send/action", SEND },
  { "POST", "/api/hubs/h/:execute", "hub/send/action", '[{"type":"SendMessage","message":{"target":"t"}}]' },
  { "POST", "/api/hubs/h/:execute", "group/write", '[{"type":"JoinGroup","group":"g"}]' },
  { "POST", "/api/hubs/h/:execute", "clientConnection/write", '[{"type":"CloseConnection"}]' },
  { "GET", "/api/v1/auth/accessKey", "auth/accessKey/action" },
}

describe("RBAC per REST operation", function()
  local emu, res
  setup(function()
    local defs = {}
    for i, op in ipairs(OPERATIONS) do
      defs[#defs + 1] = { name = "only-" .. i, data_actions = { PREFIX .. op[3] } }
      defs[#defs + 1] = { name = "all-but-" .. i, data_actions = { PREFIX .. "*" },
          not_data_actions = { PREFIX .. op[3] } }
    end
    emu = emulator.start { config = { role_definitions = defs } }
    res = emu.resources.signalr1
  end)
  teardown(function() emu:stop() end)

  local function assign(role)
    local status, a = emu:admin("POST", "/admin/role-assignments",
      { principal_id = emu.world.reader_sp, role = role, scope = res.resource_id })
    assert.equal(201, status, cjson.encode(a))
    return a.id
  end

  local function unassign(id)
    assert.equal(204, (emu:admin("DELETE", "/admin/role-assignments/" .. id)))
  end

  for i, op in ipairs(OPERATIONS) do
    local method, path, action, body = op[1], op[2], op[3], op[4]
    it(("%s %s needs %s"):format(method, path, action), function()
      local token = entra_token(emu, emu.world.reader_sp)
      local query = path:find("accessKey") and "" or nil
      -- nothing assigned yet: 403 naming the action
      local status, _, text = call(emu, res, method, path, { token = token, body = body, query = query })
      assert.equal(403, status)
      if method ~= "HEAD" then
        local b = cjson.decode(text)
        assert.equal(PREFIX .. action, b.target)
        assert.truthy(b.message:find(PREFIX .. action, 1, true))
      end
      local id = assign("only-" .. i)
      status = call(emu, res, method, path, { token = token, body = body, query = query })
      assert.is_true(status ~= 401 and status ~= 403, ("got %d with only %s"):format(status, action))
      unassign(id)
      id = assign("all-but-" .. i)
      status = call(emu, res, method, path, { token = token, body = body, query = query })
      assert.equal(403, status)
      unassign(id)
    end)
  end

  it("grants what the built-in roles say, at subscription scope too", function()
    local token = entra_token(emu, emu.world.reader_sp)
    local status, a = emu:admin("POST", "/admin/role-assignments", { principal_id = emu.world.reader_sp,
      role = "SignalR Service Reader", scope = "/subscriptions/" .. emu.world.subscription })
    assert.equal(201, status)
    assert.equal(404, (call(emu, res, "HEAD", "/api/hubs/h/users/u", { token = token })))
    assert.equal(403, (call(emu, res, "POST", "/api/hubs/h/:send", { token = token, body = SEND })))
    unassign(a.id)
    status, a = emu:admin("POST", "/admin/role-assignments", { principal_id = emu.world.reader_sp,
      role = "SignalR REST API Owner",
      scope = "/subscriptions/" .. emu.world.subscription .. "/resourceGroups/emulator-rg" })
    assert.equal(201, status)
    assert.equal(202, (call(emu, res, "POST", "/api/hubs/h/:send", { token = token, body = SEND })))
    assert.equal(403, (call(emu, res, "GET", "/api/v1/auth/accessKey", { token = token, query = "" })))
    unassign(a.id)
    assert.equal(403, (call(emu, res, "POST", "/api/hubs/h/:send", { token = token, body = SEND })))
  end)
end)
