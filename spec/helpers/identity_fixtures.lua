-- Test-time identity fixtures: RSA keys, self-signed certificates, temp files, random ids.
-- Nothing here is committed material: every key and secret is generated when a spec runs.
local pkey = require "openssl.pkey"
local x509 = require "openssl.x509"
local xname = require "openssl.x509.name"
local bignum = require "openssl.bignum"
local rand = require "openssl.rand"

local fixtures = {}

local key_pool = {}

-- RSA 2048 keys are slow to generate; specs may share a few by index.
function fixtures.rsa_key(index)
  if index and key_pool[index] then return key_pool[index] end
  local key = pkey.new { type = "RSA", bits = 2048 }
  if index then key_pool[index] = key end
  return key
end

-- A self-signed certificate for `key`. Returns the x509 object and its PEM text.
function fixtures.certificate(key, cn, not_before, not_after)
  local now = os.time()
  local crt = x509.new()
  crt:setVersion(3)
  crt:setSerial(bignum.new(math.random(1, 2 ^ 30)))
  local name = xname.new()
  name:add("CN", cn or "emulator-test")
  crt:setSubject(name)
  crt:setIssuer(name)
  crt:setPublicKey(key)
  crt:setLifetime(not_before or now - 3600, not_after or now + 86400)
  crt:sign(key)
  return crt, crt:toPEM()
end

function fixtures.uuid()
  local b = { rand.bytes(16):byte(1, 16) }
  b[7] = (b[7] & 0x0f) | 0x40
  b[9] = (b[9] & 0x3f) | 0x80
  local hex = ("%02x"):rep(16):format(table.unpack(b))
  return ("%s-%s-%s-%s-%s"):format(hex:sub(1, 8), hex:sub(9, 12), hex:sub(13, 16),
    hex:sub(17, 20), hex:sub(21, 32))
end

-- A random secret in the shape of an Entra client secret (40 characters).
function fixtures.secret()
  local alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789~._-"
  local out = {}
  for i, c in ipairs { rand.bytes(40):byte(1, 40) } do
    local j = c % #alphabet + 1
    out[i] = alphabet:sub(j, j)
  end
  return table.concat(out)
end

function fixtures.tmpdir()
  local p = io.popen("mktemp -d")
  local dir = p:read("l")
  p:close()
  return dir
end

function fixtures.write(path, content, mode)
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
  if mode then os.execute(("chmod %s '%s'"):format(mode, path)) end
  return path
end

function fixtures.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function fixtures.rmtree(dir)
  if dir and dir:match("^/tmp/") then os.execute(("rm -rf '%s'"):format(dir)) end
end

-- Runs a shell command; returns true/false and its combined output.
function fixtures.run(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return ok == true, out
end

return fixtures
