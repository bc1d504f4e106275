-- jwt.lua: every alg both ways (our code and the openssl CLI as an independent peer),
-- strict base64url, and a clear reason for every failure, never containing token text.
local jwt = require "signalr.emulator.jwt"
local fx = require "spec.helpers.identity_fixtures"

local dir, key, cert, cert_pem, key_pem, pub_pem

local function file(name, content)
  return fx.write(dir .. "/" .. name, content)
end

local function b64(s) return jwt.base64url_encode(s) end

-- Signs `input` with the openssl CLI; returns the raw signature.
local function openssl_sign(args, input)
  file("input", input)
  local ok, out = fx.run(("openssl dgst %s -binary -out '%s/sig' '%s/input'"):format(args, dir, dir))
  assert(ok, out)
  return fx.read(dir .. "/sig")
end

local function openssl_verify(args, input, signature)
  file("input", input)
  file("sig", signature)
  return fx.run(("openssl dgst %s -signature '%s/sig' '%s/input'"):format(args, dir, dir))
end

local function split(token)
  return token:match("^([^.]*)%.([^.]*)%.([^.]*)$")
end

local function expect_failure(token, opts, kind, reason_pattern)
  local header, reason, got_kind = jwt.verify(token, opts)
  assert.is_nil(header)
  assert.equal(kind, got_kind)
  assert.is_string(reason)
  if reason_pattern then assert.matches(reason_pattern, reason) end
  -- A reason never carries token text.
  for part in tostring(token):gmatch("[^.]+") do
    if #part >= 8 then assert.is_nil(reason:find(part, 1, true)) end
  end
  return reason
end

setup(function()
  dir = fx.tmpdir()
  key = fx.rsa_key(1)
  cert, cert_pem = fx.certificate(key, "jwt-spec")
  key_pem = key:toPEM("private")
  pub_pem = key:toPEM("public")
  file("key.pem", key_pem)
  file("pub.pem", pub_pem)
  file("cert.pem", cert_pem)
end)

teardown(function() fx.rmtree(dir) end)

describe("base64url", function()
  it("matches RFC 4648 vectors and round-trips every length", function()
    assert.equal("", b64(""))
    assert.equal("Zg", b64("f"))
    assert.equal("Zm8", b64("fo"))
    assert.equal("Zm9v", b64("foo"))
    assert.equal("Zm9vYg", b64("foob"))
    assert.equal("-_8", b64("\251\255"))
    for n = 0, 70 do
      local s = require("openssl.rand").bytes(n)
      assert.equal(s, jwt.base64url_decode(b64(s)))
    end
  end)

  it("decodes strictly", function()
    assert.is_nil(jwt.base64url_decode("Zg=="))      -- padding
    assert.is_nil(jwt.base64url_decode("+/8"))       -- standard alphabet
    assert.is_nil(jwt.base64url_decode("Zm 9v"))     -- whitespace
    assert.is_nil(jwt.base64url_decode("Zm9vY"))     -- impossible length
    assert.is_nil(jwt.base64url_decode("Zh"))        -- non-canonical trailing bits
    assert.is_nil(jwt.base64url_decode("Zm9"))       -- non-canonical trailing bits
    assert.equal("fo", jwt.base64url_decode("Zm8"))
    assert.is_nil(jwt.base64url_decode(nil))
  end)
end)

describe("constant_time_equal", function()
  it("compares exactly", function()
    assert.is_true(jwt.constant_time_equal("abc", "abc"))
    assert.is_false(jwt.constant_time_equal("abc", "abd"))
    assert.is_false(jwt.constant_time_equal("abc", "ab"))
    assert.is_false(jwt.constant_time_equal("abc", nil))
    assert.is_true(jwt.constant_time_equal("", ""))
  end)
end)

describe("HMAC algs", function()
  for alg, md in pairs { HS256 = "sha256", HS512 = "sha512" } do
    it(alg .. " tokens verify here and match openssl's MAC", function()
      local secret = fx.secret()
      local token = jwt.encode({ alg = alg, typ = "JWT" }, { sub = "x", n = 1 }, secret)
      local header, claims = jwt.verify(token, { algs = { alg }, key = secret })
      assert.equal(alg, header.alg)
      assert.equal("x", claims.sub)
      local h, c, s = split(token)
      local mac = openssl_sign(("-%s -mac HMAC -macopt 'key:%s'"):format(md, secret), h .. "." .. c)
      assert.equal(b64(mac), s)
    end)

    it(alg .. " tokens signed by openssl verify here", function()
      local secret = fx.secret()
      local input = b64('{"alg":"' .. alg .. '"}') .. "." .. b64('{"k":"v"}')
      local mac = openssl_sign(("-%s -mac HMAC -macopt 'key:%s'"):format(md, secret), input)
      local _, claims = jwt.verify(input .. "." .. b64(mac), { algs = { alg }, key = secret })
      assert.equal("v", claims.k)
      expect_failure(input .. "." .. b64(mac), { algs = { alg }, key = secret .. "x" },
        "signature", "^bad signature$")
    end)
  end
end)

describe("RSA algs", function()
  it("RS256 tokens verify with openssl and openssl's verify here", function()
    local token = jwt.encode({ alg = "RS256", kid = "k1" }, { a = 1 }, key)
    local h, c, s = split(token)
    local ok, out = openssl_verify(("-sha256 -verify '%s/pub.pem'"):format(dir), h .. "." .. c,
      jwt.base64url_decode(s))
    assert.is_true(ok, out)
    local input = b64('{"alg":"RS256"}') .. "." .. b64('{"b":2}')
    local sig = openssl_sign(("-sha256 -sign '%s/key.pem'"):format(dir), input)
    for _, k in ipairs { key, pub_pem, cert_pem, cert, key_pem } do
      local _, claims = jwt.verify(input .. "." .. b64(sig), { algs = { "RS256" }, key = k })
      assert.equal(2, claims.b)
    end
  end)

  it("PS256 uses PSS with a 32-byte salt both ways", function()
    local pss = "-sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32"
    local token = jwt.encode({ alg = "PS256" }, { a = 1 }, key_pem)
    local h, c, s = split(token)
    local ok, out = openssl_verify(("%s -verify '%s/pub.pem'"):format(pss, dir), h .. "." .. c,
      jwt.base64url_decode(s))
    assert.is_true(ok, out)
    -- PSS is randomised: two signatures of the same input differ, both verify.
    assert.are_not.equal(token, jwt.encode({ alg = "PS256" }, { a = 1 }, key_pem))
    local input = b64('{"alg":"PS256"}') .. "." .. b64('{"p":3}')
    local sig = openssl_sign(("%s -sign '%s/key.pem'"):format(pss, dir), input)
    local _, claims = jwt.verify(input .. "." .. b64(sig), { algs = { "PS256" }, key = cert })
    assert.equal(3, claims.p)
    -- Another salt length is not PS256 as JWA defines it.
    local sig20 = openssl_sign(("-sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:20 -sign '%s/key.pem'")
      :format(dir), input)
    expect_failure(input .. "." .. b64(sig20), { algs = { "PS256" }, key = cert }, "signature")
  end)

  it("does not accept an RS256 signature as PS256 or the other way round", function()
    local rs = jwt.encode({ alg = "RS256" }, { a = 1 }, key)
    local h, c, s = split(rs)
    local relabelled = b64('{"alg":"PS256"}') .. "." .. c .. "." .. s
    expect_failure(relabelled, { algs = { "PS256" }, key = pub_pem }, "signature")
    local ps = jwt.encode({ alg = "PS256" }, { a = 1 }, key)
    local _, c2, s2 = split(ps)
    expect_failure(b64('{"alg":"RS256"}') .. "." .. c2 .. "." .. s2,
      { algs = { "RS256" }, key = pub_pem }, "signature")
    assert.truthy(h)
  end)

  it("rejects a signature made by another key", function()
    local other = fx.rsa_key(2)
    for _, alg in ipairs { "RS256", "PS256" } do
      local token = jwt.encode({ alg = alg }, { a = 1 }, other)
      expect_failure(token, { algs = { alg }, key = cert }, "signature", "^bad signature$")
    end
  end)
end)

describe("failures", function()
  local secret = "not-a-real-secret-but-long-enough"
  local good

  before_each(function()
    good = jwt.encode({ alg = "HS256", typ = "JWT" }, { sub = "someone", exp = 2000000000 }, secret)
  end)

  it("reports malformed tokens", function()
    local opts = { algs = { "HS256" }, key = secret }
    local h, c, s = split(good)
    expect_failure("", opts, "malformed", "empty")
    expect_failure(nil, opts, "malformed")
    expect_failure(h .. "." .. c, opts, "malformed", "three dot%-separated parts")
    expect_failure(good .. ".extra", opts, "malformed", "three dot%-separated parts")
    expect_failure(h .. "=." .. c .. "." .. s, opts, "malformed", "bad base64url in header")
    expect_failure(h .. "." .. c .. "+." .. s, opts, "malformed")
    expect_failure(h .. "." .. c .. "." .. s .. "/", opts, "malformed", "bad base64url in signature")
    expect_failure(b64("{not json") .. "." .. c .. "." .. s, opts, "malformed", "bad JSON in header")
    expect_failure(h .. "." .. b64('{"a":') .. "." .. s, opts, "malformed", "bad JSON in payload")
    expect_failure(b64('["HS256"]') .. "." .. c .. "." .. s, opts, "malformed", "not a JSON object")
    expect_failure(h .. "." .. b64('"str"') .. "." .. s, opts, "malformed", "not a JSON object")
    expect_failure(b64('{"typ":"JWT"}') .. "." .. c .. "." .. s, opts, "malformed", "no alg")
    expect_failure(good .. string.rep("A", jwt.MAX_TOKEN_LENGTH), opts, "malformed", "longer than")
  end)

  it("refuses alg none in any spelling and algs not allowed", function()
    local _, c = split(good)
    for _, alg in ipairs { "none", "None", "NONE" } do
      expect_failure(b64('{"alg":"' .. alg .. '"}') .. "." .. c .. ".", { algs = { "HS256", alg } },
        "alg", "'none' is not allowed")
    end
    expect_failure(good, { algs = { "RS256" }, key = pub_pem }, "alg", "'HS256' is not allowed")
    expect_failure(b64('{"alg":"ES256"}') .. "." .. c .. ".AAAA", { algs = { "ES256" }, key = secret },
      "alg", "'ES256' is not allowed")
    local odd = b64('{"alg":"' .. string.rep("Z", 40) .. '"}') .. "." .. c .. ".AAAA"
    local reason = expect_failure(odd, { algs = { "HS256" }, key = secret }, "alg")
    assert.is_nil(reason:find("ZZZZZZZZ", 1, true))
  end)

  it("refuses alg confusion: an RSA public key used as an HMAC secret", function()
    local forged = jwt.encode({ alg = "HS256" }, { sub = "admin" }, pub_pem:gsub("BEGIN", "BEGlN"))
    expect_failure(forged, { algs = { "HS256", "RS256" }, key = pub_pem }, "key", "does not match alg")
    expect_failure(good, { algs = { "HS256" }, key = key }, "key", "does not match alg")
    expect_failure(jwt.encode({ alg = "RS256" }, {}, key), { algs = { "RS256" }, key = secret },
      "key", "not an RSA key")
  end)

  it("reports bad signatures", function()
    local h, c, s = split(good)
    local tampered = h .. "." .. b64('{"sub":"admin","exp":2000000000}') .. "." .. s
    expect_failure(tampered, { algs = { "HS256" }, key = secret }, "signature", "^bad signature$")
    expect_failure(h .. "." .. c .. ".", { algs = { "HS256" }, key = secret }, "signature")
    expect_failure(h .. "." .. c .. "." .. b64(string.rep("\0", 32)), { algs = { "HS256" }, key = secret },
      "signature")
    local rs = jwt.encode({ alg = "RS256" }, { a = 1 }, key)
    local rh, rc = split(rs)
    expect_failure(rh .. "." .. rc .. "." .. b64(string.rep("\255", 256)), { algs = { "RS256" }, key = cert },
      "signature")
    expect_failure(rh .. "." .. rc .. "." .. b64("short"), { algs = { "RS256" }, key = cert }, "signature")
  end)

  it("passes the key function's reason through", function()
    local seen
    local reason = expect_failure(good, { algs = { "HS256" }, key = function(header, claims)
      seen = header.typ .. "/" .. claims.sub
      return nil, "no key with that kid"
    end }, "key", "^no key with that kid$")
    assert.equal("JWT/someone", seen)
    assert.truthy(reason)
    expect_failure(good, { algs = { "HS256" } }, "key")
  end)

  it("checks exp and nbf when asked", function()
    local now = 1700000000
    local function tok(claims) return jwt.encode({ alg = "HS256" }, claims, secret) end
    local opts = { algs = { "HS256" }, key = secret, now = now }
    expect_failure(tok { exp = now - 1 }, opts, "expired", "^token expired$")
    expect_failure(tok { exp = now }, opts, "expired")
    expect_failure(tok { exp = now + 60, nbf = now + 10 }, opts, "not_yet_valid", "^token not yet valid$")
    expect_failure(tok { exp = "soon" }, opts, "malformed", "exp claim is not a number")
    assert.truthy(jwt.verify(tok { exp = now + 1, nbf = now }, opts))
    assert.truthy(jwt.verify(tok {}, opts))
    expect_failure(tok {}, { algs = { "HS256" }, key = secret, now = now, require_exp = true },
      "malformed", "no exp")
    local skewed = { algs = { "HS256" }, key = secret, now = now, skew = 300 }
    assert.truthy(jwt.verify(tok { exp = now - 299 }, skewed))
    assert.truthy(jwt.verify(tok { exp = now + 60, nbf = now + 299 }, skewed))
    expect_failure(tok { exp = now - 300 }, skewed, "expired")
  end)

  it("raises on misuse of encode", function()
    assert.has_error(function() jwt.encode({}, {}, secret) end)
    assert.has_error(function() jwt.encode({ alg = "HS256" }, "claims", secret) end)
    assert.has_error(function() jwt.encode({ alg = "ES256" }, {}, secret) end)
    assert.has_error(function() jwt.encode({ alg = "RS256" }, {}, secret) end)
    assert.has_error(function() jwt.encode({ alg = "HS256" }, {}, key) end)
  end)
end)

describe("certificate thumbprints", function()
  it("match openssl's fingerprints of the DER certificate", function()
    local tp = jwt.thumbprints(cert_pem)
    local ok, out = fx.run(("openssl x509 -in '%s/cert.pem' -noout -fingerprint -sha1"):format(dir))
    assert.is_true(ok, out)
    assert.equal(out:match("=([%x:]+)"):gsub(":", ""), tp.sha1_hex)
    ok, out = fx.run(("openssl x509 -in '%s/cert.pem' -outform DER | openssl dgst -sha256 -binary | base64 -w0")
      :format(dir))
    assert.is_true(ok, out)
    assert.equal(out:gsub("=", ""):gsub("%+", "-"):gsub("/", "_"), tp["x5t#S256"])
    assert.equal(jwt.thumbprints(cert).x5t, tp.x5t)
    assert.equal(20, #jwt.base64url_decode(tp.x5t))
    assert.is_nil(jwt.thumbprints("not a cert"))
  end)
end)
