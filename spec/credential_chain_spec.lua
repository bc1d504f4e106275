-- Chains (environment, default, chain{}), the Azure CLI credential, static and function
-- credentials, without I/O (fake az runners, a fake az script).
local signalr = require "signalr"
local cjson = require "cjson"
local H = require "spec.helpers.entra"

local TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
local CLIENT = "11111111-2222-3333-4444-555555555555"

local function run(cred, clock, respond, opts)
  return H.run(cred:token_op(), clock or H.clock(), respond, opts)
end

local function never() error("no request expected") end

local az_unavailable = function() return nil, "unavailable: sh: 1: az: not found" end

describe("environment", function()
  it("is a client secret credential when AZURE_CLIENT_SECRET is set", function()
    local secret = H.secret()
    local c = assert(signalr.credential.environment { env = { AZURE_TENANT_ID = TENANT, AZURE_CLIENT_ID = CLIENT,
      AZURE_CLIENT_SECRET = secret } })
    assert.equal("environment", c:kind())
    assert.matches("^EnvironmentCredential", c:describe())
    local kind, _, _, trace = run(c, nil, function() return H.token_response("t", 3600) end)
    assert.equal("done", kind)
    assert.equal(secret, H.form(trace.requests[1].body).client_secret)
    H.no_secret(tostring(c), { secret })
  end)

  it("is a certificate credential with AZURE_CLIENT_CERTIFICATE_PATH", function()
    local dir = H.tmpdir()
    local key = H.rsa_key(1)
    local _, pem = H.certificate(key, "env-cert")
    local path = H.write(dir .. "/c.pem", pem .. key:toPEM("private"), "600")
    local c = assert(signalr.credential.environment { env = { AZURE_TENANT_ID = TENANT, AZURE_CLIENT_ID = CLIENT,
      AZURE_CLIENT_CERTIFICATE_PATH = path, AZURE_CLIENT_SEND_CERTIFICATE_CHAIN = "true" } })
    H.rmtree(dir)
    local kind, _, _, trace = run(c, nil, function() return H.token_response("t", 3600) end)
    assert.equal("done", kind)
    local header = H.jwt(H.form(trace.requests[1].body).client_assertion)
    assert.equal(1, #header.x5c)
  end)

  it("says which variables are missing", function()
    local c, err = signalr.credential.environment { env = { AZURE_CLIENT_ID = CLIENT } }
    assert.is_nil(c)
    assert.equal("credential_unavailable", err.kind)
    assert.matches("AZURE_TENANT_ID", err.message, 1, true)
    assert.not_matches("missing: AZURE_CLIENT_ID", err.message, 1, true)
  end)
end)

describe("default", function()
  it("uses the environment first", function()
    local c = assert(signalr.credential.default { env = { AZURE_TENANT_ID = TENANT, AZURE_CLIENT_ID = CLIENT,
      AZURE_CLIENT_SECRET = "x-secret-value" }, az_runner = az_unavailable })
    assert.equal("default", c:kind())
    assert.matches("^DefaultAzureCredential %[EnvironmentCredential", c:describe())
    local kind, tok, _, trace = run(c, nil, function() return H.token_response("env-token", 3600) end)
    assert.same({ "done", "env-token", 1 }, { kind, tok, #trace.requests })
  end)

  it("lists every credential tried and why when none is available", function()
    local c = assert(signalr.credential.default { env = {}, az_runner = az_unavailable })
    local kind, err, trace = run(c, nil, function(req)
      assert.equal(1, req.timeout) -- the chain's IMDS probe: 1 s, no retries
      assert.equal(1, req.connect_timeout)
      return { error = "timeout", message = "timed out" }
    end)
    assert.equal("failed", kind)
    assert.equal(1, #trace.requests)
    assert.equal(0, #trace.sleeps)
    assert.equal("credential_unavailable", err.kind)
    for _, name in ipairs { "EnvironmentCredential", "WorkloadIdentityCredential", "ManagedIdentityCredential",
      "AzureCliCredential", "az: not found", "no answer within 1 s" } do
      assert.matches(name, err.message, 1, true)
    end
    assert.matches("az login", err.hint, 1, true)
  end)

  it("moves on to the Azure CLI and then keeps using whatever worked", function()
    local calls = 0
    local runner = function()
      calls = calls + 1
      return cjson.encode { accessToken = "cli-" .. calls, expires_on = 1700000000 + 60 }
    end
    local clock = H.clock()
    local c = assert(signalr.credential.default { env = {}, az_runner = runner })
    local kind, tok, _, trace = run(c, clock, function() return { error = "connect", message = "refused" } end)
    assert.same({ "done", "cli-1", 1 }, { kind, tok, #trace.requests })
    clock.advance(1) -- 59 s left: due for refresh
    kind, tok, _, trace = run(c, clock, never)
    assert.same({ "done", "cli-2", 0 }, { kind, tok, #trace.requests })
  end)

  it("uses managed identity when IMDS answers its probe, with a user-assigned id from AZURE_CLIENT_ID", function()
    local c = assert(signalr.credential.default { env = { AZURE_CLIENT_ID = CLIENT,
      AZURE_POD_IDENTITY_AUTHORITY_HOST = "http://127.0.0.1:9" }, az_runner = az_unavailable })
    local kind, tok, _, trace = run(c, nil, function(req)
      assert.equal(CLIENT, H.query(req.url).client_id)
      return H.json(200, { access_token = "mi-token", expires_in = 3600 })
    end)
    assert.same({ "done", "mi-token", 1 }, { kind, tok, #trace.requests })
  end)

  it("stops at a configured credential that fails, without trying the rest", function()
    local c = assert(signalr.credential.default { env = { AZURE_TENANT_ID = TENANT, AZURE_CLIENT_ID = CLIENT,
      AZURE_CLIENT_SECRET = "wrong-secret-1234" }, az_runner = function() error("must not run") end })
    local kind, err, trace = run(c, nil, function()
      return H.entra_error(401, 7000215, "invalid_client", "Invalid client secret provided.")
    end)
    assert.equal("failed", kind)
    assert.equal(1, #trace.requests)
    assert.equal(0, trace.callbacks)
    assert.equal("authentication_failed", err.kind)
    assert.equal("AADSTS7000215", err.code)
    assert.matches("EnvironmentCredential", err.message, 1, true)
    H.no_secret(H.error_text(err), { "wrong-secret-1234" })
  end)
end)

describe("azure_cli", function()
  it("reads accessToken and expires_on from the runner's JSON", function()
    local c = assert(signalr.credential.azure_cli { runner = function()
      return '{"accessToken":"az-tok","expires_on":1700003600,"expiresOn":"2023-11-14 23:13:20.000000"}'
    end })
    assert.equal("azure_cli", c:kind())
    local kind, tok, exp = run(c, nil, never)
    assert.same({ "done", "az-tok", 1700003600 }, { kind, tok, exp })
  end)

  it("falls back to expiresOn (local time) from older az versions", function()
    local t = os.time { year = 2030, month = 1, day = 2, hour = 3, min = 4, sec = 5 }
    local c = assert(signalr.credential.azure_cli { runner = function()
      return '{"accessToken":"az-tok","expiresOn":"2030-01-02 03:04:05.000000"}'
    end })
    local kind, tok, exp = run(c, nil, never)
    assert.same({ "done", "az-tok", t }, { kind, tok, exp })
  end)

  it("tells unavailable (not installed, not logged in) from failed", function()
    local c = assert(signalr.credential.azure_cli { runner = function()
      return nil, "unavailable: Please run 'az login' to setup account."
    end })
    local _, err = run(c, nil, never)
    assert.equal("credential_unavailable", err.kind)
    assert.matches("^AzureCliCredential: Please run 'az login'", err.message)
    c = assert(signalr.credential.azure_cli { runner = function() return nil, "AADSTS50173: grant expired" end })
    _, err = run(c, nil, never)
    assert.equal("authentication_failed", err.kind)
  end)

  describe("the default runner", function()
    local dir
    before_each(function() dir = H.tmpdir() end)
    after_each(function() H.rmtree(dir) end)

    it("runs az account get-access-token --output json --scope ... --tenant ...", function()
      local script = H.write(dir .. "/az", ([[#!/bin/sh
printf '%%s\n' "$@" > '%s/args'
echo 'WARNING: a warning on stderr' >&2
echo '{"accessToken": "from-fake-az", "expires_on": 1900000000, "tokenType": "Bearer"}'
]]):format(dir), "755")
      local c = assert(signalr.credential.azure_cli { tenant_id = TENANT, command = script })
      local kind, tok, exp = run(c, nil, never)
      assert.same({ "done", "from-fake-az", 1900000000 }, { kind, tok, exp })
      local args = io.open(dir .. "/args"):read("*a")
      assert.equal(table.concat({ "account", "get-access-token", "--output", "json", "--scope",
        "https://signalr.azure.com/.default", "--tenant", TENANT }, "\n") .. "\n", args)
    end)

    it("reports a missing az or a logged-out account as unavailable", function()
      local c = assert(signalr.credential.azure_cli { command = dir .. "/no-such-az" })
      local _, err = run(c, nil, never)
      assert.equal("credential_unavailable", err.kind)
      local script = H.write(dir .. "/az", "#!/bin/sh\necho \"ERROR: Please run 'az login' to setup account.\" >&2\n"
        .. "exit 1\n", "755")
      c = assert(signalr.credential.azure_cli { command = script })
      _, err = run(c, nil, never)
      assert.equal("credential_unavailable", err.kind)
      assert.matches("az login", err.message, 1, true)
    end)
  end)
end)

describe("chain, static and from_function", function()
  it("chain{} skips unavailable members and uses the first that works", function()
    local first = signalr.credential.from_function(function() return nil, "nothing here" end)
    local second = signalr.credential.static("static-token", 1700003600)
    local c = signalr.credential.chain { first, second }
    assert.equal("chain", c:kind())
    local kind, tok, exp = run(c, nil, never)
    assert.same({ "done", "static-token", 1700003600 }, { kind, tok, exp })
    assert.error_matches(function() signalr.credential.chain { signalr.credential.access_key("k") } end,
      "Microsoft Entra ID credential")
    assert.error_matches(function() signalr.credential.chain {} end, "1 to 16")
  end)

  it("static() hands out its token; from_function() takes token and expires_on", function()
    local kind, tok = run(signalr.credential.static("abc"), nil, never)
    assert.same({ "done", "abc" }, { kind, tok })
    assert.error_matches(function() signalr.credential.static(42) end, "token must be a string")
    assert.error_matches(function() signalr.credential.from_function("x") end, "token function must be a function")
    local c = signalr.credential.from_function(function() return "ff", 1700001000 end)
    local k2, t2, e2 = run(c, nil, never)
    assert.same({ "done", "ff", 1700001000 }, { k2, t2, e2 })
  end)

  it("an access key credential has no token op", function()
    assert.error_matches(function() signalr.credential.access_key("k"):token_op() end, "Entra")
  end)
end)
