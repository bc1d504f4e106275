-- Managed identity without I/O: which endpoint the environment selects and what is sent
-- there, the expiry shapes each endpoint answers with, and the retry policy.
local signalr = require "signalr"
local H = require "spec.helpers.entra"

local RESOURCE = "https://signalr.azure.com"
local IMDS = "http://169.254.169.254/metadata/identity/oauth2/token"

local function mi(env, opts)
  local o = { env = env or {} }
  for k, v in pairs(opts or {}) do o[k] = v end
  return signalr.credential.managed_identity(o)
end

local function first_request(cred)
  local kind, _, _, trace = H.run(cred:token_op(), H.clock(), function()
    return H.json(200, { access_token = "mi-token", expires_in = 3600 })
  end)
  assert.equal("done", kind)
  return trace.requests[1], trace
end

local function base(url) return url:match("^[^?]*") end

describe("managed_identity: the endpoint the environment selects", function()
  it("uses IMDS by default: GET with Metadata: true, api-version 2018-02-01", function()
    local req = first_request(assert(mi()))
    assert.equal("GET", req.method)
    assert.equal(IMDS, base(req.url))
    assert.same({ ["api-version"] = "2018-02-01", resource = RESOURCE }, H.query(req.url))
    assert.equal("true", req.headers.Metadata)
  end)

  it("takes the IMDS host from AZURE_POD_IDENTITY_AUTHORITY_HOST", function()
    local req = first_request(assert(mi { AZURE_POD_IDENTITY_AUTHORITY_HOST = "http://10.0.0.4:2579/" }))
    assert.equal("http://10.0.0.4:2579/metadata/identity/oauth2/token", base(req.url))
  end)

  it("selects a user-assigned identity by client id, object id or resource id", function()
    local rid = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u1"
    assert.equal("cid", H.query(first_request(assert(mi(nil, { client_id = "cid" }))).url).client_id)
    assert.equal("oid", H.query(first_request(assert(mi(nil, { object_id = "oid" }))).url).object_id)
    assert.equal(rid, H.query(first_request(assert(mi(nil, { resource_id = rid }))).url).msi_res_id)
    assert.error_matches(function() mi(nil, { client_id = "a", object_id = "b" }) end, "at most one of")
  end)

  it("uses App Service with IDENTITY_ENDPOINT + IDENTITY_HEADER (header secret, 2019-08-01)", function()
    local env = { IDENTITY_ENDPOINT = "http://127.0.0.1:41741/msi/token", IDENTITY_HEADER = "hdr-secret-123",
      IMDS_ENDPOINT = "http://127.0.0.1:9", MSI_ENDPOINT = "http://127.0.0.1:8" }
    local c = assert(mi(env, { object_id = "oid" }))
    assert.matches("App Service", c:describe(), 1, true)
    local req = first_request(c)
    assert.equal("http://127.0.0.1:41741/msi/token", base(req.url))
    assert.same({ ["api-version"] = "2019-08-01", resource = RESOURCE, principal_id = "oid" }, H.query(req.url))
    assert.equal("hdr-secret-123", req.headers["X-IDENTITY-HEADER"])
    assert.equal("r", H.query(first_request(assert(mi(env, { resource_id = "r" }))).url).mi_res_id)
    assert.equal("cid", H.query(first_request(assert(mi(env, { client_id = "cid" }))).url).client_id)
    H.no_secret(tostring(c), { "hdr-secret-123" })
  end)

  it("refuses Service Fabric (IDENTITY_SERVER_THUMBPRINT) clearly", function()
    local c, err = mi { IDENTITY_ENDPOINT = "https://10.0.0.1:2377/metadata/identity/oauth2/token",
      IDENTITY_HEADER = "x", IDENTITY_SERVER_THUMBPRINT = "abcd" }
    assert.is_nil(c)
    assert.equal("credential_unavailable", err.kind)
    assert.matches("Service Fabric", err.message, 1, true)
  end)

  it("uses Azure Arc with IDENTITY_ENDPOINT + IMDS_ENDPOINT (system-assigned only)", function()
    local env = { IDENTITY_ENDPOINT = "http://127.0.0.1:40342/metadata/identity/oauth2/token",
      IMDS_ENDPOINT = "http://127.0.0.1:40342" }
    local req = first_request(assert(mi(env)))
    assert.equal("http://127.0.0.1:40342/metadata/identity/oauth2/token", base(req.url))
    assert.equal("2019-11-01", H.query(req.url)["api-version"])
    assert.equal("true", req.headers.Metadata)
    local c, err = mi(env, { client_id = "x" })
    assert.is_nil(c)
    assert.matches("system%-assigned", err.message)
  end)

  it("uses Cloud Shell with MSI_ENDPOINT: POST resource as a form", function()
    local req = first_request(assert(mi { MSI_ENDPOINT = "http://localhost:50342/oauth2/token" }))
    assert.equal("POST", req.method)
    assert.equal("http://localhost:50342/oauth2/token", req.url)
    assert.same({ resource = RESOURCE }, H.form(req.body))
    assert.equal("true", req.headers.Metadata)
  end)

  it("uses App Service 2017 with MSI_ENDPOINT + MSI_SECRET (secret header, clientid)", function()
    local req = first_request(assert(mi({ MSI_ENDPOINT = "http://127.0.0.1:8081/msi/token", MSI_SECRET = "s-2017" },
      { client_id = "cid" })))
    assert.same({ ["api-version"] = "2017-09-01", resource = RESOURCE, clientid = "cid" }, H.query(req.url))
    assert.equal("s-2017", req.headers.secret)
  end)

  it("becomes workload identity when the workload identity variables are set", function()
    local dir = H.tmpdir()
    local file = H.write(dir .. "/t", "fed")
    local req = first_request(assert(mi { AZURE_TENANT_ID = "t1", AZURE_CLIENT_ID = "c1",
      AZURE_FEDERATED_TOKEN_FILE = file }))
    H.rmtree(dir)
    assert.equal("https://login.microsoftonline.com/t1/oauth2/v2.0/token", req.url)
    assert.equal("fed", H.form(req.body).client_assertion)
  end)
end)

describe("managed_identity: answers", function()
  local shapes = {
    { "epoch number", { expires_on = 1700003600 }, 1700003600 },
    { "epoch string", { expires_on = "1700003600" }, 1700003600 },
    { "App Service 2017 date", { expires_on = "11/14/2023 23:13:20 +00:00" }, 1700003600 },
    { "12-hour date", { expires_on = "11/14/2023 11:13:20 PM +00:00" }, 1700003600 },
    { "date with offset", { expires_on = "11/15/2023 1:13:20 AM +02:00" }, 1700003600 },
    { "expires_in string", { expires_in = "3600" }, 1700003600 },
  }
  for _, s in ipairs(shapes) do
    it("reads expires_on/expires_in as " .. s[1], function()
      local body = { access_token = "t" }
      for k, v in pairs(s[2]) do body[k] = v end
      local kind, tok, exp = H.run(assert(mi()):token_op(), H.clock(1700000000), function()
        return H.json(200, body)
      end)
      assert.same({ "done", "t", s[3] }, { kind, tok, exp })
    end)
  end

  it("retries IMDS 404/429/5xx after 1, 2, 4 s (Retry-After first), then fails", function()
    local answers = {
      H.json(429, { error = "throttled" }, { ["retry-after"] = "5" }),
      H.json(500, { error = "x" }), H.json(404, { error = "x" }), H.json(503, { error = "x" }),
    }
    local kind, err, trace = H.run(assert(mi()):token_op(), H.clock(), function(_, i) return answers[i] end)
    assert.equal("failed", kind)
    assert.equal(4, #trace.requests)
    assert.same({ 5, 2, 4 }, trace.sleeps)
    assert.equal(503, err.status)
    assert.matches("ManagedIdentityCredential (IMDS)", err.message, 1, true)
  end)

  it("gives IMDS 410 (being updated) 70 s of patience, every 10 s", function()
    local kind, err, trace = H.run(assert(mi()):token_op(), H.clock(), function()
      return H.json(410, { error = "gone" })
    end)
    assert.equal("failed", kind)
    assert.equal(410, err.status)
    assert.equal(8, #trace.requests)
    assert.same({ 10, 10, 10, 10, 10, 10, 10 }, trace.sleeps)
    kind = H.run(assert(mi()):token_op(), H.clock(), function(_, i)
      if i < 4 then return H.json(410, { error = "gone" }) end
      return H.json(200, { access_token = "t", expires_in = 60 })
    end)
    assert.equal("done", kind)
  end)

  it("calls a 400 'identity not found' unavailable, with a hint", function()
    local kind, err = H.run(assert(mi(nil, { client_id = "nope" })):token_op(), H.clock(), function()
      return H.json(400, { error = "invalid_request", error_description = "Identity not found" })
    end)
    assert.equal("failed", kind)
    assert.equal("credential_unavailable", err.kind)
    assert.matches("Identity not found", err.message, 1, true)
    assert.matches("no managed identity with this id", err.hint, 1, true)
  end)

  it("keeps the App Service identity header out of errors", function()
    local env = { IDENTITY_ENDPOINT = "http://127.0.0.1:1/msi/token", IDENTITY_HEADER = "very-secret-header" }
    local kind, err = H.run(assert(mi(env)):token_op(), H.clock(), function()
      return H.json(401, { statusCode = 401, message = "Invalid X-IDENTITY-HEADER very-secret-header" })
    end)
    assert.equal("failed", kind)
    assert.equal(401, err.status)
    assert.matches("IDENTITY_HEADER", err.hint, 1, true)
    H.no_secret(H.error_text(err), { "very-secret-header" })
  end)
end)

describe("managed_identity: Azure Arc key file challenge", function()
  local dir
  local env = { IDENTITY_ENDPOINT = "http://127.0.0.1:40342/metadata/identity/oauth2/token",
    IMDS_ENDPOINT = "http://127.0.0.1:40342" }
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmtree(dir) end)

  local function challenge(path)
    return { status = 401, headers = { ["www-authenticate"] = "Basic realm=" .. path }, body = "" }
  end

  it("answers the challenge with the key file's contents as Basic authorization", function()
    H.write(dir .. "/abc.key", "arc-key-material\n")
    local kind, tok, _, trace = H.run(assert(mi(env, { arc_key_dir = dir })):token_op(), H.clock(), function(req, i)
      if i == 1 then
        assert.is_nil(req.headers.Authorization)
        return challenge(dir .. "/abc.key")
      end
      assert.equal("Basic arc-key-material", req.headers.Authorization)
      return H.json(200, { access_token = "arc-token", expires_in = "3600" })
    end)
    assert.same({ "done", "arc-token", 2 }, { kind, tok, #trace.requests })
  end)

  it("refuses a key file outside the agent's directory, not named .key, or over 4 KiB", function()
    local other = H.tmpdir()
    H.write(other .. "/x.key", "k")
    H.write(dir .. "/x.txt", "k")
    H.write(dir .. "/big.key", string.rep("k", 5000))
    for path, why in pairs { [other .. "/x.key"] = "outside", [dir .. "/x.txt"] = ".key",
      [dir .. "/../" .. dir:match("[^/]+$") .. "/x.key"] = "outside", [dir .. "/big.key"] = "4 KiB" } do
      local kind, err = H.run(assert(mi(env, { arc_key_dir = dir })):token_op(), H.clock(), function()
        return challenge(path)
      end)
      assert.equal("failed", kind)
      assert.matches(why, err.message, 1, true)
    end
    H.rmtree(other)
  end)
end)
