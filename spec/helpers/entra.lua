-- Helpers for the Microsoft Entra ID specs (credentials, token cache, temporary key):
-- a scripted sans-I/O driver with a hand-moved clock, JWT decoding, test certificates
-- generated now (luaossl), and a check that no secret leaks into a string.
-- Works on Lua 5.4 and LuaJIT.
local cjson = require "cjson"
local token_reader = require "spec.helpers.token"
local pkey = require "openssl.pkey"
local x509 = require "openssl.x509"
local xname = require "openssl.x509.name"
local bignum = require "openssl.bignum"
local rand = require "openssl.rand"
local digest = require "openssl.digest"

local M = {}

--- Runs a shell command outside any sanitizer preload (under `make asan` the tools we call
--- are not ours to check); returns ok, output (stdout and stderr).
function M.sh(cmd)
  local p = io.popen("env -u LD_PRELOAD " .. cmd .. " 2>&1")
  local out = p:read("*a")
  local ok = p:close()
  return ok == true or ok == 0, out
end

local unpack = table.unpack or unpack -- luacheck: ignore 143

--- A clock specs move by hand: clock.now, clock:fn() for signalr.new{ clock = }.
function M.clock(start)
  local c = { now = start or 1700000000 }
  function c.fn() return c.now end
  function c.advance(s) c.now = c.now + s; return c.now end
  return c
end

--- Runs a sans-I/O op to its end. `respond(req, i)` answers the i-th request with a
--- response table ({ status =, headers =, body = } or { error = "connect" }); `callback`
--- answers CALLBACK steps (default: call the function); SLEEP steps move the clock.
--- Returns the op's results ("done", ...) or ("failed", err), plus a trace table
--- { requests = {...}, sleeps = {...} }.
function M.run(op, clock, respond, opts)
  opts = opts or {}
  local trace = { requests = {}, sleeps = {}, callbacks = 0 }
  local resp
  for _ = 1, 10000 do
    local r = { op:step(clock.now, resp) }
    resp = nil
    local kind = r[1]
    if kind == "request" then
      trace.requests[#trace.requests + 1] = r[2]
      resp = respond(r[2], #trace.requests)
      assert(resp, "the script has no answer for request " .. #trace.requests .. ": " .. r[2].method .. " "
        .. r[2].url)
    elseif kind == "sleep" then
      trace.sleeps[#trace.sleeps + 1] = r[2]
      clock.advance(r[2])
    elseif kind == "callback" then
      trace.callbacks = trace.callbacks + 1
      local ok, v, why
      if opts.callback then ok, v, why = pcall(opts.callback, r[2]) else ok, v, why = pcall(r[2]) end
      if ok then op:feed(v, why) else op:feed(nil, tostring(v)) end
    else
      r[#r + 1] = trace
      return unpack(r, 1, #r)
    end
  end
  error("the op did not finish")
end

--- A driver for svc:set_driver that answers with `respond` and moves `clock` on sleeps.
--- trace.requests collects every request.
function M.driver(clock, respond, trace)
  return function(op)
    local r = { M.run(op, clock, function(req, _)
      trace.requests[#trace.requests + 1] = req
      return respond(req, #trace.requests)
    end) }
    local t = r[#r]
    for _, s in ipairs(t.sleeps) do trace.sleeps[#trace.sleeps + 1] = s end
    if r[1] == "done" then return unpack(r, 2, #r - 1) end
    return nil, r[2]
  end
end

function M.json(status, value, headers)
  return { status = status, headers = headers or { ["content-type"] = "application/json" },
           body = cjson.encode(value) }
end

function M.token_response(token, expires_in, extra)
  local v = { access_token = token, token_type = "Bearer", expires_in = expires_in or 3600 }
  for k, x in pairs(extra or {}) do v[k] = x end
  return M.json(200, v)
end

--- An Entra error body as the token endpoint sends it.
function M.entra_error(status, code, err, text)
  return M.json(status, { error = err or "invalid_client", error_codes = { code },
    error_description = ("AADSTS%d: %s\r\nTrace ID: 00000000-0000-0000-0000-000000000000"):format(code, text or "x") })
end

function M.form(body)
  local t = {}
  for pair in body:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=(.*)$")
    local function dec(s) return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)) end
    t[dec(k)] = dec(v)
  end
  return t
end

function M.query(url)
  return M.form(url:match("%?(.*)$") or "")
end

-- base64 (either alphabet, padding ignored) and base64url, and JWT splitting: the spec
-- token reader's (spec/helpers/token.lua).
function M.b64decode(s)
  return assert(token_reader.b64url_decode((s:gsub("%+", "-"):gsub("/", "_"):gsub("=", ""))))
end

M.b64url = token_reader.b64url_encode

--- header, claims, signing input, signature bytes of a compact JWT.
M.jwt = token_reader.decode

local key_pool = {}
--- RSA 2048 keys are slow: specs share a few by index.
function M.rsa_key(index)
  if index and key_pool[index] then return key_pool[index] end
  local key = pkey.new { type = "RSA", bits = 2048 }
  if index then key_pool[index] = key end
  return key
end

--- A certificate for `key` signed by `issuer_key` (self-signed when nil).
function M.certificate(key, cn, issuer_key, issuer_cn)
  local now = os.time()
  local crt = x509.new()
  crt:setVersion(3)
  crt:setSerial(bignum.new(math.random(1, 2 ^ 30)))
  local subject = xname.new()
  subject:add("CN", cn)
  local issuer = xname.new()
  issuer:add("CN", issuer_cn or cn)
  crt:setSubject(subject)
  crt:setIssuer(issuer)
  crt:setPublicKey(key)
  crt:setLifetime(now - 3600, now + 86400)
  crt:sign(issuer_key or key)
  return crt, crt:toPEM()
end

--- x5t / x5t#S256 of a certificate, computed here (not by the SDK).
function M.thumbprints(crt)
  local der = crt:tostring("DER")
  return M.b64url(digest.new("sha1"):final(der)), M.b64url(digest.new("sha256"):final(der)), der
end

--- Verifies an RS256/PS256 signature with the openssl CLI (an independent verifier).
function M.verify(token, public_pem)
  local header, _, input, sig = M.jwt(token)
  local dir = M.tmpdir()
  M.write(dir .. "/in", input)
  M.write(dir .. "/sig", sig)
  M.write(dir .. "/pub.pem", public_pem)
  local pss = header.alg == "PS256" and "-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 " or ""
  local _, out = M.sh(("openssl dgst -sha256 %s-verify '%s/pub.pem' -signature '%s/sig' '%s/in'")
    :format(pss, dir, dir, dir))
  M.rmtree(dir)
  return out:find("Verified OK", 1, true) ~= nil, out
end

function M.tmpdir()
  local _, out = M.sh("mktemp -d")
  return (out:match("[^\r\n]+"))
end

function M.write(path, content, mode)
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
  if mode then M.sh(("chmod %s '%s'"):format(mode, path)) end
  return path
end

function M.rmtree(dir)
  if dir and dir:match("^/tmp/") then M.sh(("rm -rf '%s'"):format(dir)) end
end

function M.secret(n)
  local b = rand.bytes(n or 24)
  return "S3c~" .. M.b64url(b)
end

--- Fails when any of the secrets appears in s (tostring'd).
function M.no_secret(s, secrets)
  s = tostring(s)
  for _, secret in ipairs(secrets) do
    if secret and #secret >= 6 and s:find(secret, 1, true) then
      error("a secret leaked into: " .. s:gsub(secret:gsub("%p", "%%%0"), "<SECRET>"), 2)
    end
  end
  return true
end

--- Every string field of an error object, and its tostring.
function M.error_text(err)
  local parts = { tostring(err) }
  for k, v in pairs(err) do parts[#parts + 1] = tostring(k) .. "=" .. tostring(v) end
  return table.concat(parts, "\n")
end

return M
