-- App registration credentials (client secret, certificate, client assertion, workload
-- identity), driven without I/O: what they send to the token endpoint and how they read
-- its answers. The emulator specs (entra_emulator_spec.lua) run them for real.
local signalr = require "signalr"
local H = require "spec.helpers.entra"

local SCOPE = "https://signalr.azure.com/.default"
local TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
local CLIENT = "11111111-2222-3333-4444-555555555555"

local function run(cred, clock, respond)
  return H.run(cred:token_op(), clock, respond)
end

local function ok_token() return H.token_response("tok", 3600) end

local sh = H.sh

describe("client_secret", function()
  local secret = H.secret()

  local function cred(extra)
    local o = { tenant_id = TENANT, client_id = CLIENT, client_secret = secret }
    for k, v in pairs(extra or {}) do o[k] = v end
    return signalr.credential.client_secret(o)
  end

  it("posts the client credentials grant to {authority}/{tenant}/oauth2/v2.0/token", function()
    local clock = H.clock()
    local kind, tok, exp, trace = run(assert(cred()), clock, ok_token)
    assert.same({ "done", "tok", clock.now + 3600 }, { kind, tok, exp })
    local req = trace.requests[1]
    assert.equal("POST", req.method)
    assert.equal("https://login.microsoftonline.com/" .. TENANT .. "/oauth2/v2.0/token", req.url)
    assert.equal("application/x-www-form-urlencoded", req.headers["Content-Type"])
    assert.same({ client_id = CLIENT, scope = SCOPE, grant_type = "client_credentials", client_secret = secret },
      H.form(req.body))
  end)

  it("takes the authority host from options, then AZURE_AUTHORITY_HOST (sovereign clouds)", function()
    local clock = H.clock()
    local env = { AZURE_AUTHORITY_HOST = "https://login.chinacloudapi.cn/" }
    local _, _, _, t1 = run(assert(cred { env = env }), clock, ok_token)
    assert.equal("https://login.chinacloudapi.cn/" .. TENANT .. "/oauth2/v2.0/token", t1.requests[1].url)
    local _, _, _, t2 = run(assert(cred { env = env, authority_host = "https://login.microsoftonline.us" }), clock,
      ok_token)
    assert.equal("https://login.microsoftonline.us/" .. TENANT .. "/oauth2/v2.0/token", t2.requests[1].url)
  end)

  it("refuses an http authority and a tenant that is not a GUID or domain name", function()
    local c, err = cred { authority_host = "http://login.microsoftonline.com" }
    assert.is_nil(c)
    assert.equal("invalid_argument", err.kind)
    assert.matches("https", err.message)
    c, err = cred { tenant_id = "../evil?x=1" }
    assert.is_nil(c)
    assert.equal("invalid_argument", err.kind)
    assert.matches("tenant_id", err.message)
  end)

  it("raises on wrong argument types, naming the argument", function()
    assert.has_error(function() signalr.credential.client_secret("x") end,
      "bad argument #1 to 'client_secret' (options must be a table, got string)")
    assert.error_matches(function() cred { client_secret = 42 } end,
      "options.client_secret must be a string, got number")
    assert.error_matches(function() signalr.credential.client_secret { tenant_id = TENANT, client_id = CLIENT } end,
      "options.client_secret is required")
    assert.error_matches(function() cred { tenant = "x" } end, "unknown option 'tenant'")
  end)

  it("never shows the secret in tostring or describe", function()
    local c = assert(cred())
    H.no_secret(tostring(c), { secret })
    H.no_secret(c:describe(), { secret })
    assert.matches(CLIENT, c:describe(), 1, true)
    assert.equal("client_secret", c:kind())
  end)

  local cases = {
    { 401, 7000215, "invalid_client", "authentication_failed", "secret's value" },
    { 401, 7000222, "invalid_client", "authentication_failed", "expired" },
    { 400, 700016, "unauthorized_client", "authentication_failed", "provisioned" },
    { 400, 90002, "invalid_request", "authentication_failed", "authority host" },
  }
  for _, c in ipairs(cases) do
    it(("maps AADSTS%d to %s with the code, status and a hint"):format(c[2], c[4]), function()
      local kind, err = run(assert(cred()), H.clock(), function()
        return H.entra_error(c[1], c[2], c[3], "Something about app '" .. CLIENT .. "'.")
      end)
      assert.equal("failed", kind)
      assert.equal(c[4], err.kind)
      assert.equal(c[1], err.status)
      assert.equal("AADSTS" .. c[2], err.code)
      assert.matches("ClientSecretCredential: POST https://login.microsoftonline.com/" .. TENANT
        .. "/oauth2/v2.0/token answered " .. c[1], err.message, 1, true)
      assert.matches("AADSTS" .. c[2], tostring(err), 1, true)
      assert.matches(c[5], err.hint, 1, true)
      assert.not_matches("Trace ID", err.message, 1, true)
      H.no_secret(H.error_text(err), { secret })
    end)
  end

  it("drops an error description that would echo the secret", function()
    local _, err = run(assert(cred()), H.clock(), function()
      return H.entra_error(401, 7000215, "invalid_client", "you sent " .. secret)
    end)
    assert.equal("AADSTS7000215", err.code)
    H.no_secret(H.error_text(err), { secret })
  end)

  it("retries 429/5xx/network failures 3 times in all, honouring Retry-After", function()
    local answers = {
      H.json(429, { error = "throttled" }, { ["retry-after"] = "7" }),
      { error = "connect", message = "connection refused" },
      H.json(503, { error = "temporarily_unavailable" }),
    }
    local kind, err, trace = run(assert(cred()), H.clock(), function(_, i) return answers[i] end)
    assert.equal("failed", kind)
    assert.equal(3, #trace.requests)
    assert.same({ 7, 1.6 }, trace.sleeps)
    assert.equal("service_error", err.kind)
    assert.equal(503, err.status)
  end)

  it("reads expires_in given as a string and refresh_in", function()
    local clock = H.clock()
    local c = assert(cred())
    local kind, tok, exp = run(c, clock, function()
      return H.json(200, { access_token = "t2", expires_in = "1800", refresh_in = 900 })
    end)
    assert.same({ "done", "t2", clock.now + 1800 }, { kind, tok, exp })
  end)

  it("reports a token response without a token as a service error", function()
    local kind, err = run(assert(cred()), H.clock(), function() return H.json(200, { expires_in = 10 }) end)
    assert.equal("failed", kind)
    assert.equal("service_error", err.kind)
    assert.matches("no access_token", err.message, 1, true)
  end)
end)

describe("certificate", function()
  local dir, key, crt, pem, key_pem
  setup(function()
    dir = H.tmpdir()
    key = H.rsa_key(1)
    crt, pem = H.certificate(key, "app-cert")
    key_pem = key:toPEM("private")
    H.write(dir .. "/cert.pem", pem .. key_pem, "600")
    H.write(dir .. "/only-cert.pem", pem)
    H.write(dir .. "/key.pem", key_pem, "600")
  end)
  teardown(function() H.rmtree(dir) end)

  local function cert(extra)
    local o = { tenant_id = TENANT, client_id = CLIENT, certificate_path = dir .. "/cert.pem" }
    for k, v in pairs(extra or {}) do o[k] = v end
    if o.certificate then o.certificate_path = nil end
    return signalr.credential.certificate(o)
  end

  local function assertion_of(c, clock)
    local kind, _, _, trace = run(assert(c), clock or H.clock(), ok_token)
    assert.equal("done", kind)
    local form = H.form(trace.requests[1].body)
    assert.equal("urn:ietf:params:oauth:client-assertion-type:jwt-bearer", form.client_assertion_type)
    assert.is_nil(form.client_secret)
    return form.client_assertion, trace.requests[1]
  end

  it("signs an RS256 assertion: x5t, aud = token endpoint, iss = sub = client id, 10 minutes", function()
    local clock = H.clock()
    local jwt, req = assertion_of(cert(), clock)
    local header, claims = H.jwt(jwt)
    local x5t = H.thumbprints(crt)
    assert.same({ alg = "RS256", typ = "JWT", x5t = x5t }, header)
    assert.equal(req.url, claims.aud)
    assert.equal(CLIENT, claims.iss)
    assert.equal(CLIENT, claims.sub)
    assert.equal(clock.now, claims.nbf)
    assert.equal(600, claims.exp - claims.nbf)
    assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", claims.jti)
    assert.is_true((H.verify(jwt, key:toPEM("public"))))
  end)

  it("signs PS256 with x5t#S256 when asked", function()
    local jwt = assertion_of(cert { algorithm = "PS256" })
    local header = H.jwt(jwt)
    local _, s256 = H.thumbprints(crt)
    assert.same({ alg = "PS256", typ = "JWT", ["x5t#S256"] = s256 }, header)
    assert.is_true((H.verify(jwt, key:toPEM("public"))))
  end)

  it("sends the chain in x5c when asked, leaf first", function()
    local ca_key = H.rsa_key(2)
    local ca, ca_pem = H.certificate(ca_key, "test-ca")
    local leaf, leaf_pem = H.certificate(key, "leaf", ca_key, "test-ca")
    local jwt = assertion_of(cert { certificate = ca_pem .. key_pem .. leaf_pem, send_certificate_chain = true })
    local header = H.jwt(jwt)
    local _, _, leaf_der = H.thumbprints(leaf)
    local _, _, ca_der = H.thumbprints(ca)
    assert.equal(2, #header.x5c)
    assert.equal(leaf_der, H.b64decode(header.x5c[1]))
    assert.equal(ca_der, H.b64decode(header.x5c[2]))
    assert.equal((H.thumbprints(leaf)), header.x5t)
  end)

  it("uses a fresh jti for every acquisition", function()
    local c = assert(cert())
    local clock = H.clock()
    local seen = {}
    for _ = 1, 3 do
      local kind, _, _, trace = run(c, clock, function() return H.token_response("t", 60) end)
      assert.equal("done", kind)
      local _, claims = H.jwt(H.form(trace.requests[1].body).client_assertion)
      assert.is_nil(seen[claims.jti])
      seen[claims.jti] = true
      clock.advance(1)
    end
  end)

  it("loads a certificate string with a separate key, a key file, an encrypted key and PKCS#12", function()
    local pw = "pw-" .. H.secret(6)
    local ok, out = sh(("openssl pkey -in '%s/key.pem' -aes256 -passout 'pass:%s' -out '%s/enc.pem'")
      :format(dir, pw, dir))
    assert(ok, out)
    ok, out = sh(("openssl pkcs12 -export -in '%s/only-cert.pem' -inkey '%s/key.pem' -passout 'pass:%s' "
      .. "-out '%s/c.p12'"):format(dir, dir, pw, dir))
    assert(ok, out)
    local enc = io.open(dir .. "/enc.pem"):read("*a")
    local x5t = H.thumbprints(crt)
    for _, o in ipairs {
      { certificate = pem, private_key = key_pem },
      { certificate_path = dir .. "/only-cert.pem", private_key_path = dir .. "/key.pem" },
      { certificate = pem, private_key = enc, password = pw },
      { certificate_path = dir .. "/c.p12", password = pw },
    } do
      local jwt = assertion_of(cert(o))
      assert.equal(x5t, H.jwt(jwt).x5t)
    end
  end)

  it("refuses a mismatched key, a wrong password, a non-RSA key and a missing file, echoing no key", function()
    local other = H.rsa_key(2):toPEM("private")
    local c, err = cert { certificate = pem, private_key = other }
    assert.is_nil(c)
    assert.equal("invalid_argument", err.kind)
    assert.matches("does not match", err.message)
    H.no_secret(H.error_text(err), { other:sub(40, 100), key_pem:sub(40, 100) })

    sh(("openssl pkcs12 -export -in '%s/only-cert.pem' -inkey '%s/key.pem' -passout pass:right -out '%s/w.p12'")
      :format(dir, dir, dir))
    c, err = cert { certificate_path = dir .. "/w.p12", password = "wrong" }
    assert.is_nil(c)
    assert.matches("PKCS#12", err.message)

    local ok, out = sh(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout '%s/ec.key' "
      .. "-out '%s/ec.crt' -subj /CN=ec -days 1"):format(dir, dir))
    assert(ok, out)
    c, err = cert { certificate_path = dir .. "/ec.crt", private_key_path = dir .. "/ec.key" }
    assert.is_nil(c)
    assert.matches("not RSA", err.message)

    c, err = cert { certificate_path = dir .. "/missing.pem" }
    assert.is_nil(c)
    assert.matches("cannot open the certificate file", err.message)
  end)

  it("describes itself with the thumbprint, never the key", function()
    local c = assert(cert())
    assert.matches("ClientCertificateCredential", c:describe(), 1, true)
    assert.matches("certificate %x+", c:describe())
    H.no_secret(tostring(c), { key_pem:sub(30, 90) })
  end)
end)

describe("client_assertion and workload_identity", function()
  local dir
  setup(function() dir = H.tmpdir() end)
  teardown(function() H.rmtree(dir) end)

  it("calls the assertion function for each acquisition and sends what it returns", function()
    local n = 0
    local c = assert(signalr.credential.client_assertion { tenant_id = TENANT, client_id = CLIENT,
      assertion = function() n = n + 1; return "assertion-" .. n end })
    local clock = H.clock()
    for i = 1, 2 do
      local kind, _, _, trace = run(c, clock, function() return H.token_response("t", 60) end)
      assert.equal("done", kind)
      assert.equal("assertion-" .. i, H.form(trace.requests[1].body).client_assertion)
      clock.advance(1)
    end
  end)

  it("reports an assertion function that fails as unavailable, with its reason", function()
    local c = assert(signalr.credential.client_assertion { tenant_id = TENANT, client_id = CLIENT,
      assertion = function() return nil, "the vault is sealed" end })
    local kind, err = run(c, H.clock(), ok_token)
    assert.equal("failed", kind)
    assert.equal("credential_unavailable", err.kind)
    assert.matches("the vault is sealed", err.message, 1, true)
    c = assert(signalr.credential.client_assertion { tenant_id = TENANT, client_id = CLIENT,
      assertion = function() error("boom") end })
    kind, err = run(c, H.clock(), ok_token)
    assert.equal("failed", kind)
    assert.matches("boom", err.message, 1, true)
  end)

  it("re-reads the token file at most every 10 minutes", function()
    local file = H.write(dir .. "/token", "federated-1\n")
    local c = assert(signalr.credential.client_assertion { tenant_id = TENANT, client_id = CLIENT,
      assertion_file = file })
    local clock = H.clock()
    local function sent()
      local kind, _, _, trace = run(c, clock, function() return H.token_response("t", 60) end)
      assert.equal("done", kind)
      return H.form(trace.requests[1].body).client_assertion
    end
    assert.equal("federated-1", sent())
    H.write(file, "federated-2")
    clock.advance(599)
    assert.equal("federated-1", sent())
    clock.advance(1)
    assert.equal("federated-2", sent())
  end)

  it("workload_identity takes AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE", function()
    local file = H.write(dir .. "/k8s-token", "k8s-assertion")
    local env = { AZURE_TENANT_ID = TENANT, AZURE_CLIENT_ID = CLIENT, AZURE_FEDERATED_TOKEN_FILE = file,
      AZURE_AUTHORITY_HOST = "https://login.microsoftonline.us" }
    local c = assert(signalr.credential.workload_identity { env = env })
    assert.equal("workload_identity", c:kind())
    assert.matches("WorkloadIdentityCredential", c:describe(), 1, true)
    local kind, _, _, trace = run(c, H.clock(), ok_token)
    assert.equal("done", kind)
    assert.equal("https://login.microsoftonline.us/" .. TENANT .. "/oauth2/v2.0/token", trace.requests[1].url)
    local form = H.form(trace.requests[1].body)
    assert.same({ CLIENT, "k8s-assertion" }, { form.client_id, form.client_assertion })
  end)

  it("workload_identity without its variables is unavailable and names what is missing", function()
    local c, err = signalr.credential.workload_identity { env = { AZURE_TENANT_ID = TENANT } }
    assert.is_nil(c)
    assert.equal("credential_unavailable", err.kind)
    assert.matches("AZURE_CLIENT_ID", err.message, 1, true)
    assert.matches("AZURE_FEDERATED_TOKEN_FILE", err.message, 1, true)
  end)

  it("reports a missing token file when a token is needed", function()
    local c = assert(signalr.credential.workload_identity { env = { AZURE_TENANT_ID = TENANT,
      AZURE_CLIENT_ID = CLIENT, AZURE_FEDERATED_TOKEN_FILE = dir .. "/nope" } })
    local kind, err, trace = run(c, H.clock(), ok_token)
    assert.equal("failed", kind)
    assert.equal(0, #trace.requests)
    assert.matches("cannot read the token file", err.message, 1, true)
  end)

  it("refuses a string assertion (it would be mistaken for a file name and echoed)", function()
    assert.error_matches(function()
      signalr.credential.client_assertion { tenant_id = TENANT, client_id = CLIENT, assertion = "eyJ..." }
    end, "options.assertion must be a function")
  end)
end)
