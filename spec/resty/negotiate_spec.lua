-- The OpenResty quick start (examples/openresty) in a real nginx with the lua module
-- (Debian nginx + libnginx-mod-http-lua, OpenResty's LuaJIT): POST /negotiate answers a
-- token the service would accept. Run by scripts/check-openresty.
local token = require "spec.helpers.token"
local cjson = require "cjson.safe"

local ROOT = (debug.getinfo(1, "S").source:match("^@(.*)/spec/resty/[^/]*$")) or "."
-- scripts/check-openresty sets these: our module built for OpenResty's LuaJIT, and the
-- unpacked nginx lua module, LuaJIT library and lua-resty-core.
local BUILD = os.getenv("SIGNALR_RESTY_BUILD") or "build/luajit"
local OR_ROOT = os.getenv("SIGNALR_OPENRESTY_ROOT")
local OR_LIBS = os.getenv("SIGNALR_OPENRESTY_LIBS")
local KEY = "S3cretKeyValue0123456789abcdefghijklmnopqrs="

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local NGINX_ENV = OR_LIBS and ("LD_LIBRARY_PATH=" .. sh_quote(OR_LIBS) .. " ") or ""

local function read(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

-- Starts nginx on a free port with the example's config; nginx daemonizes only once its
-- listening socket is bound, so when os.execute returns it accepts connections.
local function start_nginx(env)
  local prefix = os.tmpname()
  os.remove(prefix)
  assert(os.execute("mkdir -p " .. sh_quote(prefix .. "/logs")))
  local conf = read(ROOT .. "/examples/openresty/nginx.conf")
    :gsub("%$prefix/build/luajit/", ROOT .. "/" .. BUILD .. "/")
    :gsub("%$prefix/", ROOT .. "/")
  if OR_ROOT then
    conf = conf:gsub("load_module /usr/lib/nginx/modules/", "load_module " .. OR_ROOT .. "/usr/lib/nginx/modules/")
      :gsub('lua_package_path "', 'lua_package_path "' .. OR_ROOT .. "/usr/share/lua/5.1/?.lua;")
  end
  local env_prefix = {}
  for k, v in pairs(env) do env_prefix[#env_prefix + 1] = k .. "=" .. sh_quote(v) end
  for _ = 1, 10 do
    local port = math.random(20000, 60000)
    local f = assert(io.open(prefix .. "/nginx.conf", "w"))
    f:write((conf:gsub("listen 127%.0%.0%.1:8080;", "listen 127.0.0.1:" .. port .. ";")))
    f:close()
    -- nginx's default module paths (";;") come from LUA_PATH/LUA_CPATH: the spec's own
    -- (maybe Lua 5.4) paths must not leak into LuaJIT.
    local ok = os.execute("env -u LUA_PATH -u LUA_CPATH " .. NGINX_ENV .. table.concat(env_prefix, " ") ..
      " nginx -p " .. sh_quote(prefix) ..
      " -c nginx.conf 2>>" .. sh_quote(prefix .. "/logs/start.log"))
    if ok == true or ok == 0 then
      return {
        port = port, prefix = prefix,
        error_log = function() return read(prefix .. "/logs/error.log") end,
        stop = function()
          os.execute(NGINX_ENV .. "nginx -p " .. sh_quote(prefix) .. " -c nginx.conf -s stop 2>/dev/null")
        end,
      }
    end
    if not read(prefix .. "/logs/start.log"):find("Address already in use", 1, true) then
      error("nginx did not start: " .. read(prefix .. "/logs/start.log"))
    end
  end
  error("no free port for nginx")
end

local function request(port, method, path, headers)
  local args = { "curl", "-s", "-X", method, "-w", "'\\n%{http_code}'" }
  for k, v in pairs(headers or {}) do args[#args + 1] = "-H " .. sh_quote(k .. ": " .. v) end
  args[#args + 1] = sh_quote(("http://127.0.0.1:%d%s"):format(port, path))
  local p = assert(io.popen(table.concat(args, " ")))
  local out = p:read("a")
  p:close()
  local body, status = out:match("^(.*)\n(%d+)$")
  return tonumber(status), body
end

describe("OpenResty /negotiate example", function()
  local nginx
  setup(function()
    math.randomseed(os.time())
    nginx = start_nginx {
      AZURE_SIGNALR_CONNECTION_STRING =
        "Endpoint=https://demo.service.signalr.net;AccessKey=" .. KEY .. ";Version=1.0;",
      SIGNALR_APPLICATION = "MyApp",
    }
  end)
  teardown(function() if nginx then nginx.stop() end end)

  it("answers POST /negotiate with the URL and a token for the authenticated user", function()
    local status, body = request(nginx.port, "POST", "/negotiate", { ["X-Authenticated-User"] = "alice" })
    assert.equal(200, status)
    local neg = assert(cjson.decode(body))
    assert.equal("https://demo.service.signalr.net/client/?hub=myapp_chat", neg.url)
    local _, claims = token.decode(neg.accessToken)
    assert.equal("alice", claims["asrs.s.uid"])
    assert.equal("https://demo.service.signalr.net/client/?hub=myapp_chat", claims.aud)
    assert.is_true(token.verify(neg.accessToken, KEY))
  end)

  it("answers without a user id when no user is authenticated, and refuses GET", function()
    local status, body = request(nginx.port, "POST", "/negotiate")
    assert.equal(200, status)
    local _, claims = token.decode(cjson.decode(body).accessToken)
    assert.is_nil(claims["asrs.s.uid"])
    assert.equal(403, (request(nginx.port, "GET", "/negotiate")))
  end)

  it("answers 503 when the connection string is bad, and logs why without the key", function()
    local broken = start_nginx { AZURE_SIGNALR_CONNECTION_STRING = "Endpoint=ftp://x;AccessKey=" .. KEY }
    local status = request(broken.port, "POST", "/negotiate")
    broken.stop()
    assert.equal(503, status)
    local log = broken.error_log()
    assert.matches("Endpoint", log)
    assert.is_nil(log:find(KEY, 1, true))
  end)
end)
