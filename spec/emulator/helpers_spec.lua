-- The spec helpers must work under LuaJIT too (the SDK's specs run there): a LuaJIT
-- process starts the emulator through spec/helpers/emulator.lua, calls the admin API,
-- connects spec/helpers/hub_client.lua with a token it signs with luaossl, receives a
-- REST send, and stops the emulator.
local emulator = require "spec.helpers.emulator"

local SCRIPT = [=[
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
local emulator = require "spec.helpers.emulator"
local hub_client = require "spec.helpers.hub_client"
local cjson = require "cjson"
local hmac = require "openssl.hmac"

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local function b64url(s)   -- no bit operators: LuaJIT and 5.1 semantics
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = 2 + (b and 1 or 0) + (c and 1 or 0)
    for k = 1, chars do
      local v = math.floor(n / 2 ^ (18 - 6 * (k - 1))) % 64
      out[#out + 1] = B64:sub(v + 1, v + 1)
    end
  end
  return table.concat(out)
end
local function sign(key, claims)
  local input = b64url('{"alg":"HS256","typ":"JWT"}') .. "." .. b64url(cjson.encode(claims))
  return input .. "." .. b64url(hmac.new(key, "sha256"):final(input))
end

local emu = emulator.start()
local res = emu.resources.signalr1
assert(res.connection_string:find("AccessKey=", 1, true))
local status, clock = emu:admin("GET", "/admin/clock")
assert(status == 200 and type(clock.now) == "number")
local now = os.time()
local aud = res.endpoint:gsub(":%d+$", "") .. "/client/?hub=chat"
local c = assert(hub_client.connect { endpoint = res.endpoint, hub = "chat", ca_file = emu.ca_file,
  token = sign(emu.world.access_keys[1], { aud = aud, exp = now + 600, nbf = now, ["asrs.s.uid"] = "jit" }) })
local path = "/api/hubs/chat/users/jit/:send"
status = emu:request { method = "POST", url = res.endpoint .. path .. "?api-version=2022-06-01",
  body = '{"target":"hi","arguments":[1]}', headers = { ["content-type"] = "application/json",
  authorization = "Bearer " .. sign(emu.world.access_keys[2], { aud = res.endpoint .. path, exp = now + 600 }) } }
assert(status == 202, tostring(status))
local msg = assert(c:next_invocation(5))
assert(msg.target == "hi")
c:close()
assert(emu:stop())
print("OK " .. _VERSION .. " " .. tostring(jit and jit.version))
]=]

describe("spec helpers", function()
  it("work under LuaJIT", function()
    local path = emulator.state_dir() .. "/helpers-luajit.lua"
    local f = assert(io.open(path, "w"))
    f:write(SCRIPT)
    f:close()
    -- LuaJIT's own module paths, not the 5.4 ones a Makefile may have exported
    local p = io.popen("cd " .. emulator.ROOT .. " && env -u LUA_PATH -u LUA_CPATH luajit " .. path .. " 2>&1")
    local out = p:read("*a")
    p:close()
    assert.matches("^OK Lua 5%.1 LuaJIT", out)
  end)
end)
