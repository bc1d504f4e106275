--- An independent JWT reader for specs: base64url in plain Lua, JSON by lua-cjson,
-- HMAC by luaossl. Shares no code with the SDK's C core.
local cjson = require "cjson.safe"
local hmac = require "openssl.hmac"

local M = {}

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local value = {}
for i = 1, #alphabet do value[alphabet:sub(i, i)] = i - 1 end

function M.b64url_decode(s)
  local out, acc, bits = {}, 0, 0
  for i = 1, #s do
    local v = value[s:sub(i, i)]
    if not v then return nil, "bad base64url character" end
    acc = acc * 64 + v
    bits = bits + 6
    if bits >= 8 then
      bits = bits - 8
      local byte = math.floor(acc / 2 ^ bits) % 256
      out[#out + 1] = string.char(byte)
      acc = acc % 2 ^ bits
    end
  end
  return table.concat(out)
end

function M.b64url_encode(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = 2 + (b and 1 or 0) + (c and 1 or 0)
    for k = 1, chars do
      local idx = math.floor(n / 2 ^ (6 * (4 - k))) % 64
      out[#out + 1] = alphabet:sub(idx + 1, idx + 1)
    end
  end
  return table.concat(out)
end

--- Splits and decodes a compact JWS: header, claims, signing input, raw signature.
function M.decode(token)
  local h, p, s = token:match("^([%w_-]+)%.([%w_-]+)%.([%w_-]+)$")
  assert(h, "not a compact JWS")
  local header = assert(cjson.decode(assert(M.b64url_decode(h))))
  local claims = assert(cjson.decode(assert(M.b64url_decode(p))))
  return header, claims, h .. "." .. p, assert(M.b64url_decode(s))
end

local digests = { HS256 = "sha256", HS512 = "sha512" }

--- true when the token's HMAC signature checks out with `key` (the key string's bytes).
function M.verify(token, key)
  local header, _, input, sig = M.decode(token)
  local digest = digests[header.alg]
  if not digest then return false end
  return hmac.new(key, digest):final(input) == sig
end

--- Verifies with PyJWT (Debian python3-jwt) in a separate process; returns the claims
-- as PyJWT decoded them, or nil and PyJWT's complaint. Token and key go through stdin.
function M.pyjwt_decode(token, key, audience, algorithms)
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write([[
import sys, json, jwt
token, key, aud, algs = sys.stdin.read().split("\n")[:4]
try:
    claims = jwt.decode(token, key, algorithms=algs.split(","), audience=aud)
    print(json.dumps({"ok": True, "claims": claims}))
except Exception as e:
    print(json.dumps({"ok": False, "error": type(e).__name__}))
]])
  f:close()
  local input = os.tmpname()
  f = assert(io.open(input, "w"))
  f:write(token, "\n", key, "\n", audience, "\n", table.concat(algorithms or { "HS256", "HS512" }, ","))
  f:close()
  local p = assert(io.popen("/usr/bin/python3 " .. script .. " < " .. input))
  local out = p:read("a")
  p:close()
  os.remove(script)
  os.remove(input)
  local res = assert(cjson.decode(out), "PyJWT printed no JSON")
  if res.ok then return res.claims end
  return nil, res.error
end

return M
