-- Tokens for emulator specs, signed with the emulator's own jwt.lua (luaossl), never with
-- the SDK: access-key tokens for REST calls and client tokens for negotiate/WebSocket.
-- Lua 5.4 only (jwt.lua uses 5.4 integer operators), like the emulator specs.
local jwt = require "signalr.emulator.jwt"

local M = {}

-- aud for a REST call: the request URL (optionally with its query).
-- opts: alg (HS256), now (seconds), lifetime (3600), exp, nbf, kid, claims (extra)
function M.rest(key, aud, opts)
  opts = opts or {}
  local now = opts.now or os.time()
  local claims = { aud = aud, iat = now, nbf = opts.nbf or now, exp = opts.exp or (now + (opts.lifetime or 3600)) }
  if opts.no_exp then claims.exp = nil end
  for k, v in pairs(opts.claims or {}) do claims[k] = v end
  return jwt.encode({ alg = opts.alg or "HS256", typ = "JWT", kid = opts.kid }, claims, key)
end

-- "https://localhost/client/?hub=chat" from "https://localhost:1234" (no port, per the SDK).
function M.client_aud(endpoint, hub)
  local scheme, host = endpoint:match("^(%a+)://([^/]+)")
  host = host:gsub(":%d+$", "")
  return scheme .. "://" .. host .. "/client/?hub=" .. hub:lower()
end

-- opts: user (asrs.s.uid), nameid, roles (list), alg, now, lifetime, exp, nbf, kid, aud, claims
function M.client(key, endpoint, hub, opts)
  opts = opts or {}
  local now = opts.now or os.time()
  local claims = { aud = opts.aud or M.client_aud(endpoint, hub), iat = now, nbf = opts.nbf or now,
    exp = opts.exp or (now + (opts.lifetime or 3600)), iss = "azure-signalr" }
  if opts.user then claims["asrs.s.uid"] = opts.user end
  if opts.nameid then claims.nameid = opts.nameid end
  if opts.roles then claims.role = opts.roles end
  for k, v in pairs(opts.claims or {}) do claims[k] = v end
  return jwt.encode({ alg = opts.alg or "HS256", typ = "JWT", kid = opts.kid }, claims, key)
end

return M
