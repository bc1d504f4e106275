-- A local CA and a server certificate for localhost, 127.0.0.1 and ::1 (plus any other
-- host the emulator is told to serve), made once with EC P-256 keys (fast) and kept in
-- the state directory, so users trust one CA file across restarts.
local pkey = require "openssl.pkey"
local x509 = require "openssl.x509"
local x509_name = require "openssl.x509.name"
local altname = require "openssl.x509.altname"
local extension = require "openssl.x509.extension"
local x509_store = require "openssl.x509.store"
local bignum = require "openssl.bignum"
local rand = require "openssl.rand"
local http_tls = require "http.tls"
local statedir = require "signalr.emulator.statedir"

local M = {}

local DAY = 86400
local CA_LIFETIME = 10 * 365 * DAY
local LEAF_LIFETIME = 365 * DAY
local RENEW_BEFORE = 7 * DAY

M.DEFAULT_HOSTS = { "localhost", "127.0.0.1", "::1" }

local function new_key()
  return pkey.new { type = "EC", curve = "prime256v1" }
end

local function serial()
  return bignum.fromBinary(rand.bytes(16))
end

local function is_ip(host)
  return host:match("^%d+%.%d+%.%d+%.%d+$") or host:find(":", 1, true)
end

local function make_ca()
  local key = new_key()
  local crt = x509.new()
  crt:setVersion(3)
  crt:setSerial(serial())
  local dn = x509_name.new()
  dn:add("O", "signalr-emulator")
  dn:add("CN", "signalr-emulator local CA")
  crt:setSubject(dn)
  crt:setIssuer(dn)
  local now = os.time()
  crt:setLifetime(now - DAY, now + CA_LIFETIME)
  crt:setBasicConstraints { CA = true, pathLen = 0 }
  crt:setBasicConstraintsCritical(true)
  crt:setPublicKey(key)
  crt:addExtension(extension.new("keyUsage", "critical,keyCertSign,cRLSign"))
  crt:addExtension(extension.new("subjectKeyIdentifier", "hash", { subject = crt }))
  crt:sign(key, "sha256")
  return crt, key
end

local function make_leaf(ca, ca_key, hosts)
  local key = new_key()
  local crt = x509.new()
  crt:setVersion(3)
  crt:setSerial(serial())
  local dn = x509_name.new()
  dn:add("CN", hosts[1])
  crt:setSubject(dn)
  crt:setIssuer(ca:getSubject())
  local alt = altname.new()
  for _, h in ipairs(hosts) do
    alt:add(is_ip(h) and "IP" or "DNS", h)
  end
  crt:setSubjectAlt(alt)
  local now = os.time()
  crt:setLifetime(now - DAY, now + LEAF_LIFETIME)
  crt:setBasicConstraints { CA = false }
  crt:setBasicConstraintsCritical(true)
  crt:setPublicKey(key)
  crt:addExtension(extension.new("keyUsage", "critical,digitalSignature"))
  crt:addExtension(extension.new("extendedKeyUsage", "serverAuth"))
  crt:addExtension(extension.new("subjectKeyIdentifier", "hash", { subject = crt }))
  crt:addExtension(extension.new("authorityKeyIdentifier", "keyid:always", { issuer = ca }))
  crt:sign(ca_key, "sha256")
  return crt, key
end

local function covers(crt, hosts)
  local alt = crt:getSubjectAlt()
  if not alt then return false end
  local have = {}
  for _, v in pairs(alt) do have[v] = true end
  for _, h in ipairs(hosts) do
    -- OpenSSL prints ::1 in its long form
    if not (have[h] or (h == "::1" and have["0:0:0:0:0:0:0:1"])) then return false end
  end
  return true
end

-- Loads the material if it is complete, valid for another week, and matches `hosts`.
local function load(paths, hosts)
  local pems = {}
  for k, p in pairs(paths) do
    local data = statedir.read(p)
    if not data then return nil end
    pems[k] = data
  end
  local ok, material = pcall(function()
    local ca = x509.new(pems.ca)
    local ca_key = pkey.new(pems.ca_key)
    local leaf = x509.new(pems.leaf)
    local leaf_key = pkey.new(pems.leaf_key)
    local store = x509_store.new()
    store:add(ca)
    assert(store:verify(leaf))
    local _, not_after = leaf:getLifetime()
    local _, ca_not_after = ca:getLifetime()
    local horizon = os.time() + RENEW_BEFORE
    assert(not_after > horizon and ca_not_after > horizon)
    assert(covers(leaf, hosts))
    return { ca = ca, ca_key = ca_key, leaf = leaf, leaf_key = leaf_key }
  end)
  if ok then return material end
end

local function save(paths, m)
  assert(statedir.write(paths.ca_key, m.ca_key:toPEM("private"), true))
  assert(statedir.write(paths.leaf_key, m.leaf_key:toPEM("private"), true))
  assert(statedir.write(paths.leaf, tostring(m.leaf)))
  -- the CA file last: its presence means the set is complete
  assert(statedir.write(paths.ca, tostring(m.ca)))
end

-- OpenSSL 3 reports a peer that closes without close_notify as an SSL error, which
-- cqueues 20200726 retries forever (a busy loop on read() == 0). SSL_OP_IGNORE_UNEXPECTED_EOF
-- (bit 7, OpenSSL >= 3.0; luaossl does not name it) turns it into a clean end of stream.
M.OP_IGNORE_UNEXPECTED_EOF = 0x80
function M.ignore_unexpected_eof(ctx)
  local ok, version = pcall(function() return require "openssl".version() end)
  if ok and type(version) == "number" and version >= 0x30000000 then
    ctx:setOptions(M.OP_IGNORE_UNEXPECTED_EOF)
  end
  return ctx
end

-- Returns { ca_file, server_context() } | nil, err.
function M.ensure(dir, hosts, sleep)
  hosts = hosts or M.DEFAULT_HOSTS
  local ok, err = statedir.mkdir_p(dir)
  if not ok then return nil, err end
  local paths = {
    ca = dir .. "/ca.pem", ca_key = dir .. "/ca-key.pem",
    leaf = dir .. "/server.pem", leaf_key = dir .. "/server-key.pem",
  }
  local material = load(paths, hosts)
  if not material then
    local gok, gerr = pcall(statedir.with_lock, dir, function()
      material = load(paths, hosts)
      if material then return end
      -- keep a still-valid CA (users trust it) and only reissue the server certificate
      local ca, ca_key
      local ca_pem, key_pem = statedir.read(paths.ca), statedir.read(paths.ca_key)
      if ca_pem and key_pem then
        local lok, c, k = pcall(function() return x509.new(ca_pem), pkey.new(key_pem) end)
        if lok then
          local _, ca_not_after = c:getLifetime()
          if ca_not_after > os.time() + RENEW_BEFORE then ca, ca_key = c, k end
        end
      end
      if not ca then ca, ca_key = make_ca() end
      local leaf, leaf_key = make_leaf(ca, ca_key, hosts)
      material = { ca = ca, ca_key = ca_key, leaf = leaf, leaf_key = leaf_key }
      save(paths, material)
    end, sleep or function(s) os.execute("sleep " .. s) end)
    if not gok then return nil, "cannot create TLS material in " .. dir .. ": " .. tostring(gerr) end
  end
  return {
    ca_file = paths.ca,
    server_context = function()
      local ctx = http_tls.new_server_context()
      M.ignore_unexpected_eof(ctx)
      assert(ctx:setPrivateKey(material.leaf_key))
      assert(ctx:setCertificate(material.leaf))
      return ctx
    end,
  }
end

return M
