-- JWT encode/decode/verify for the emulator: HS256, HS512, RS256, PS256 (luaossl only).
-- The emulator never uses the SDK's C core, so a bug on one side cannot hide behind the
-- same bug on the other. No failure reason ever contains token text or key material.
local cjson = require "cjson.safe"
local digest = require "openssl.digest"
local hmac = require "openssl.hmac"
local pkey = require "openssl.pkey"
local rand = require "openssl.rand"
local x509 = require "openssl.x509"

local byte, char, sub, rep, concat = string.byte, string.char, string.sub, string.rep, table.concat
local type, pcall, getmetatable, ipairs = type, pcall, getmetatable, ipairs

local jwt = {}

-- Longest token accepted before any parsing (Entra's own tokens stay well under 16 KB).
jwt.MAX_TOKEN_LENGTH = 16384

local HMAC_DIGESTS = { HS256 = "sha256", HS512 = "sha512" }
local RSA_DIGESTS = { RS256 = "sha256", PS256 = "sha256" }
local SHA256_LEN = 32

---------------------------------------------------------------------------------------
-- base64url (RFC 4648 section 5, no padding)
---------------------------------------------------------------------------------------
local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local ENC, DEC = {}, {}
for i = 1, 64 do
  local c = byte(ALPHABET, i)
  ENC[i - 1] = char(c)
  DEC[c] = i - 1
end

function jwt.base64url_encode(s)
  local out, n = {}, 0
  local len = #s
  for i = 1, len - 2, 3 do
    local a, b, c = byte(s, i, i + 2)
    local v = a * 65536 + b * 256 + c
    out[n + 1] = ENC[v >> 18] .. ENC[(v >> 12) & 63] .. ENC[(v >> 6) & 63] .. ENC[v & 63]
    n = n + 1
  end
  local rest = len % 3
  if rest == 1 then
    local v = byte(s, len) * 16
    out[n + 1] = ENC[v >> 6] .. ENC[v & 63]
  elseif rest == 2 then
    local a, b = byte(s, len - 1, len)
    local v = (a * 256 + b) * 4
    out[n + 1] = ENC[v >> 12] .. ENC[(v >> 6) & 63] .. ENC[v & 63]
  end
  return concat(out)
end

-- Strict: only the URL-safe alphabet, no padding, no whitespace, and the unused low bits
-- of the last character must be zero (one canonical text per byte string).
function jwt.base64url_decode(s)
  if type(s) ~= "string" then return nil, "not a string" end
  local len = #s
  if len % 4 == 1 then return nil, "impossible length" end
  local out, n = {}, 0
  local full = len - len % 4
  for i = 1, full, 4 do
    local a, b, c, d = DEC[byte(s, i)], DEC[byte(s, i + 1)], DEC[byte(s, i + 2)], DEC[byte(s, i + 3)]
    if not (a and b and c and d) then return nil, "invalid character" end
    local v = (a << 18) | (b << 12) | (c << 6) | d
    out[n + 1] = char(v >> 16, (v >> 8) & 255, v & 255)
    n = n + 1
  end
  local rest = len - full
  if rest == 2 then
    local a, b = DEC[byte(s, full + 1)], DEC[byte(s, full + 2)]
    if not (a and b) then return nil, "invalid character" end
    if b & 15 ~= 0 then return nil, "non-canonical trailing bits" end
    out[n + 1] = char((a << 2) | (b >> 4))
  elseif rest == 3 then
    local a, b, c = DEC[byte(s, full + 1)], DEC[byte(s, full + 2)], DEC[byte(s, full + 3)]
    if not (a and b and c) then return nil, "invalid character" end
    if c & 3 ~= 0 then return nil, "non-canonical trailing bits" end
    local v = (a << 10) | (b << 4) | (c >> 2)
    out[n + 1] = char(v >> 8, v & 255)
  end
  return concat(out)
end

---------------------------------------------------------------------------------------
-- helpers
---------------------------------------------------------------------------------------

-- Compares two strings in time that depends only on their lengths (MAC lengths are
-- fixed per alg, so an early exit on a length mismatch reveals nothing).
function jwt.constant_time_equal(a, b)
  if type(a) ~= "string" or type(b) ~= "string" or #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do diff = diff | (byte(a, i) ~ byte(b, i)) end
  return diff == 0
end

local function class_of(v)
  if type(v) ~= "userdata" then return nil end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__name or nil
end

local function sha(name, data)
  return digest.new(name):final(data)
end

-- Returns an RSA pkey from a pkey, an x509 certificate or a PEM text (private key,
-- public key or certificate), or nil and a reason.
function jwt.rsa_key(k)
  local class = class_of(k)
  local key
  if class == "EVP_PKEY*" then
    key = k
  elseif class == "X509*" then
    key = k:getPublicKey()
  elseif type(k) == "string" and k:find("-----BEGIN", 1, true) then
    local ok, parsed
    if k:find("-----BEGIN CERTIFICATE-----", 1, true)
        and not k:find("PRIVATE KEY-----", 1, true) then
      ok, parsed = pcall(x509.new, k, "PEM")
      if ok then ok, parsed = pcall(parsed.getPublicKey, parsed) end
    else
      ok, parsed = pcall(pkey.new, k, "PEM")
    end
    if not ok then return nil, "key is not a readable PEM key or certificate" end
    key = parsed
  else
    return nil, "key is not an RSA key"
  end
  local ok, t = pcall(key.type, key)
  if not ok or t ~= "rsaEncryption" then return nil, "key is not an RSA key" end
  return key
end

-- Thumbprints of a certificate (PEM text or x509 object), over its DER encoding.
-- Returns { sha1_hex = "ABC...", x5t = <b64url sha1>, ["x5t#S256"] = <b64url sha256> }.
function jwt.thumbprints(cert)
  if type(cert) == "string" then
    local ok, parsed = pcall(x509.new, cert, "PEM")
    if not ok then return nil, "not a readable PEM certificate" end
    cert = parsed
  elseif class_of(cert) ~= "X509*" then
    return nil, "not a certificate"
  end
  local der = cert:tostring("DER")
  local sha1 = sha("sha1", der)
  return {
    sha1_hex = (sha1:gsub(".", function(c) return ("%02X"):format(byte(c)) end)),
    x5t = jwt.base64url_encode(sha1),
    ["x5t#S256"] = jwt.base64url_encode(sha("sha256", der)),
    der = der,
  }
end

---------------------------------------------------------------------------------------
-- RSASSA-PSS with SHA-256, MGF1-SHA-256, salt length = 32 (RFC 8017 9.1, RFC 7518 3.5).
-- luaossl's pkey:sign is PKCS#1 v1.5 only, so the PSS encoding is done here and the raw
-- RSA operation is a no-padding private "decrypt" / public "encrypt".
---------------------------------------------------------------------------------------
local function xor_strings(a, b)
  local out = {}
  for i = 1, #a do out[i] = char(byte(a, i) ~ byte(b, i)) end
  return concat(out)
end

local function mgf1_sha256(seed, len)
  local out, n, counter = {}, 0, 0
  while n * SHA256_LEN < len do
    out[n + 1] = sha("sha256", seed .. char((counter >> 24) & 255, (counter >> 16) & 255,
      (counter >> 8) & 255, counter & 255))
    n, counter = n + 1, counter + 1
  end
  return sub(concat(out), 1, len)
end

local function rsa_bits(key)
  local n = key:getParameters().n:toBinary()
  local first, lead = byte(n, 1), 0
  while first < 128 do first, lead = first * 2, lead + 1 end
  return #n * 8 - lead
end

local function pss_sign(key, message)
  local mod_bits = rsa_bits(key)
  local k = (mod_bits + 7) // 8
  local em_bits = mod_bits - 1
  local em_len = (em_bits + 7) // 8
  if em_len < 2 * SHA256_LEN + 2 then error("RSA key too small for PS256") end
  local m_hash = sha("sha256", message)
  local salt = rand.bytes(SHA256_LEN)
  local h = sha("sha256", rep("\0", 8) .. m_hash .. salt)
  local db = rep("\0", em_len - 2 * SHA256_LEN - 2) .. "\1" .. salt
  local masked = xor_strings(db, mgf1_sha256(h, em_len - SHA256_LEN - 1))
  local clear = 8 * em_len - em_bits
  masked = char(byte(masked, 1) & (255 >> clear)) .. sub(masked, 2)
  local em = masked .. h .. "\188"
  if #em < k then em = rep("\0", k - #em) .. em end
  return key:decrypt(em, { rsaPadding = pkey.RSA_NO_PADDING })
end

local function pss_verify(key, message, signature)
  local mod_bits = rsa_bits(key)
  local k = (mod_bits + 7) // 8
  if #signature ~= k then return false end
  local ok, m = pcall(key.encrypt, key, signature, { rsaPadding = pkey.RSA_NO_PADDING })
  if not ok or type(m) ~= "string" or #m ~= k then return false end
  local em_bits = mod_bits - 1
  local em_len = (em_bits + 7) // 8
  if em_len < k then
    if byte(m, 1) ~= 0 then return false end
    m = sub(m, k - em_len + 1)
  end
  if em_len < 2 * SHA256_LEN + 2 or byte(m, em_len) ~= 0xbc then return false end
  local masked = sub(m, 1, em_len - SHA256_LEN - 1)
  local h = sub(m, em_len - SHA256_LEN, em_len - 1)
  local clear = 8 * em_len - em_bits
  if byte(masked, 1) & ~(255 >> clear) & 255 ~= 0 then return false end
  local db = xor_strings(masked, mgf1_sha256(h, #masked))
  db = char(byte(db, 1) & (255 >> clear)) .. sub(db, 2)
  local ps_len = em_len - 2 * SHA256_LEN - 2
  if db:find("[^\0]", 1) ~= ps_len + 1 or byte(db, ps_len + 1) ~= 1 then return false end
  local salt = sub(db, #db - SHA256_LEN + 1)
  local h2 = sha("sha256", rep("\0", 8) .. sha("sha256", message) .. salt)
  return jwt.constant_time_equal(h, h2)
end

---------------------------------------------------------------------------------------
-- signing and verification of a signing input
---------------------------------------------------------------------------------------
local function looks_like_pem(s)
  return type(s) == "string" and s:find("-----BEGIN", 1, true) ~= nil
end

local function sign(alg, input, key)
  local hname = HMAC_DIGESTS[alg]
  if hname then
    if type(key) ~= "string" or looks_like_pem(key) then
      error("jwt.encode: " .. alg .. " needs a secret string as key", 3)
    end
    return hmac.new(key, hname):final(input)
  end
  if not RSA_DIGESTS[alg] then error("jwt.encode: unsupported alg", 3) end
  local rsa, err = jwt.rsa_key(key)
  if not rsa then error("jwt.encode: " .. err, 3) end
  if alg == "PS256" then return pss_sign(rsa, input) end
  return rsa:sign(digest.new(RSA_DIGESTS[alg]):update(input))
end

-- Returns true, or false and a reason ("key" kind problems are reported separately).
local function check_signature(alg, input, signature, key)
  local hname = HMAC_DIGESTS[alg]
  if hname then
    if type(key) ~= "string" or looks_like_pem(key) then
      return nil, "key type does not match alg " .. alg
    end
    local expected = hmac.new(key, hname):final(input)
    return jwt.constant_time_equal(expected, signature)
  end
  local rsa, err = jwt.rsa_key(key)
  if not rsa then return nil, err end
  if alg == "PS256" then
    local ok, good = pcall(pss_verify, rsa, input, signature)
    return ok and good
  end
  local ok, good = pcall(rsa.verify, rsa, signature, digest.new(RSA_DIGESTS[alg]):update(input))
  return ok and good == true
end

---------------------------------------------------------------------------------------
-- public API
---------------------------------------------------------------------------------------

-- header.alg picks the algorithm; key is a secret string (HS*) or an RSA private key
-- (pkey or PEM text) for RS256/PS256. Misuse raises; it is a programming error.
function jwt.encode(header, claims, key)
  if type(header) ~= "table" or type(header.alg) ~= "string" then
    error("jwt.encode: header.alg is required", 2)
  end
  if type(claims) ~= "table" then error("jwt.encode: claims must be a table", 2) end
  local h = assert(cjson.encode(header))
  local c = assert(cjson.encode(claims))
  local input = jwt.base64url_encode(h) .. "." .. jwt.base64url_encode(c)
  return input .. "." .. jwt.base64url_encode(sign(header.alg, input, key))
end

local function decode_json_object(text, part)
  if not text:find("^%s*{") then return nil, part .. " is not a JSON object" end
  local value = cjson.decode(text)
  if type(value) ~= "table" then return nil, "bad JSON in " .. part end
  return value
end

-- Splits and decodes a compact JWS without checking its signature.
-- Returns { header, claims, signing_input, signature } or nil, reason, kind ("malformed").
function jwt.decode(token)
  if type(token) ~= "string" or token == "" then
    return nil, "malformed token: empty", "malformed"
  end
  if #token > jwt.MAX_TOKEN_LENGTH then
    return nil, "malformed token: longer than " .. jwt.MAX_TOKEN_LENGTH .. " characters", "malformed"
  end
  local h64, c64, s64 = token:match("^([^.]*)%.([^.]*)%.([^.]*)$")
  if not h64 then
    return nil, "malformed token: expected three dot-separated parts", "malformed"
  end
  local parts = {}
  for _, p in ipairs { { "header", h64 }, { "payload", c64 }, { "signature", s64 } } do
    local raw = jwt.base64url_decode(p[2])
    if not raw then return nil, "malformed token: bad base64url in " .. p[1], "malformed" end
    parts[p[1]] = raw
  end
  local header, err = decode_json_object(parts.header, "header")
  if not header then return nil, "malformed token: " .. err, "malformed" end
  local claims
  claims, err = decode_json_object(parts.payload, "payload")
  if not claims then return nil, "malformed token: " .. err, "malformed" end
  if type(header.alg) ~= "string" then
    return nil, "malformed token: header has no alg", "malformed"
  end
  return {
    header = header,
    claims = claims,
    signing_input = h64 .. "." .. c64,
    signature = parts.signature,
  }
end

-- Checks exp and nbf against `now` (seconds) with `skew` seconds of tolerance (and
-- `nbf_skew` more for nbf alone). Returns true or nil, reason, kind ("expired" |
-- "not_yet_valid" | "malformed").
function jwt.check_time(claims, now, skew, require_exp, nbf_skew)
  skew = skew or 0
  local exp, nbf = claims.exp, claims.nbf
  if exp == nil then
    if require_exp then return nil, "token has no exp claim", "malformed" end
  elseif type(exp) ~= "number" then
    return nil, "exp claim is not a number", "malformed"
  elseif now >= exp + skew then
    return nil, "token expired", "expired"
  end
  if nbf ~= nil then
    if type(nbf) ~= "number" then return nil, "nbf claim is not a number", "malformed" end
    if now + skew + (nbf_skew or 0) < nbf then return nil, "token not yet valid", "not_yet_valid" end
  end
  return true
end

-- opts.algs: list of accepted algs (required); opts.key: a key, or fn(header, claims) ->
-- key | nil, reason. Optional opts.now (+ opts.skew, opts.require_exp) checks exp/nbf.
-- Returns header, claims or nil, reason, kind where kind is one of: "malformed",
-- "alg", "key", "signature", "expired", "not_yet_valid".
function jwt.verify(token, opts)
  assert(type(opts) == "table" and type(opts.algs) == "table", "jwt.verify: opts.algs is required")
  local t, err, kind = jwt.decode(token)
  if not t then return nil, err, kind end
  local alg = t.header.alg
  if alg:lower() == "none" then return nil, "alg 'none' is not allowed", "alg" end
  local allowed = false
  for _, a in ipairs(opts.algs) do
    if a == alg then allowed = true break end
  end
  if not allowed or not (HMAC_DIGESTS[alg] or RSA_DIGESTS[alg]) then
    local shown = #alg <= 16 and alg:match("^[%w%-_]+$") and alg or "?"
    return nil, "alg '" .. shown .. "' is not allowed", "alg"
  end
  local key = opts.key
  if type(key) == "function" then
    local reason
    key, reason = key(t.header, t.claims)
    if not key then return nil, reason or "no key for this token", "key" end
  end
  if key == nil then return nil, "no key for this token", "key" end
  local good, why = check_signature(alg, t.signing_input, t.signature, key)
  if good == nil then return nil, why, "key" end
  if not good then return nil, "bad signature", "signature" end
  if opts.now then
    local ok, reason, k = jwt.check_time(t.claims, opts.now, opts.skew, opts.require_exp, opts.nbf_skew)
    if not ok then return nil, reason, k end
  end
  return t.header, t.claims
end

return jwt
