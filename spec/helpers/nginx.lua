-- Starts nginx with the lua module for the OpenResty specs (spec/resty), and talks to it
-- with curl. scripts/check-openresty sets SIGNALR_OPENRESTY_ROOT (nginx lua module,
-- OpenResty's LuaJIT and lua-resty-core unpacked there), SIGNALR_OPENRESTY_LIBS and
-- SIGNALR_RESTY_BUILD (our module built for that LuaJIT).
local M = {}

M.ROOT = (debug.getinfo(1, "S").source:match("^@(.*)/spec/helpers/[^/]*$")) or "."
M.BUILD = os.getenv("SIGNALR_RESTY_BUILD") or "build/luajit"
local OR_ROOT = os.getenv("SIGNALR_OPENRESTY_ROOT")
local OR_LIBS = os.getenv("SIGNALR_OPENRESTY_LIBS")

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
M.sh_quote = sh_quote
local NGINX_ENV = OR_LIBS and ("LD_LIBRARY_PATH=" .. sh_quote(OR_LIBS) .. " ") or ""

local function read(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end
M.read = read

--- Rewrites a config written for an installed system to this checkout and test machine:
-- $prefix/ -> the checkout, the module paths -> the unpacked OpenResty root.
function M.localize(conf)
  conf = conf:gsub("%$prefix/build/luajit/", M.ROOT .. "/" .. M.BUILD .. "/"):gsub("%$prefix/", M.ROOT .. "/")
  if OR_ROOT then
    conf = conf:gsub("load_module /usr/lib/nginx/modules/", "load_module " .. OR_ROOT .. "/usr/lib/nginx/modules/")
      :gsub('lua_package_path "', 'lua_package_path "' .. OR_ROOT .. "/usr/share/lua/5.1/?.lua;")
  end
  return conf
end

--- Starts nginx with `conf` (its listen line must read `listen 127.0.0.1:8080;`) on a
-- free port, with `env` in its environment. nginx daemonizes only once its listening
-- socket is bound, so when this returns it accepts connections.
function M.start(conf, env)
  local prefix = os.tmpname()
  os.remove(prefix)
  assert(os.execute("mkdir -p " .. sh_quote(prefix .. "/logs")))
  local env_prefix = {}
  for k, v in pairs(env or {}) do env_prefix[#env_prefix + 1] = k .. "=" .. sh_quote(v) end
  for _ = 1, 10 do
    local port = math.random(20000, 60000)
    local f = assert(io.open(prefix .. "/nginx.conf", "w"))
    f:write((conf:gsub("listen 127%.0%.0%.1:8080;", "listen 127.0.0.1:" .. port .. ";")))
    f:close()
    -- nginx's default module paths (";;") come from LUA_PATH/LUA_CPATH: the spec's own
    -- (maybe Lua 5.4) paths must not leak into LuaJIT.
    local ok = os.execute("env -u LUA_PATH -u LUA_CPATH " .. NGINX_ENV .. table.concat(env_prefix, " ") ..
      " nginx -p " .. sh_quote(prefix) .. " -c nginx.conf 2>>" .. sh_quote(prefix .. "/logs/start.log"))
    if ok == true or ok == 0 then
      local handle = { port = port, prefix = prefix }
      function handle.error_log() return read(prefix .. "/logs/error.log") end
      function handle.stop()
        os.execute(NGINX_ENV .. "nginx -p " .. sh_quote(prefix) .. " -c nginx.conf -s stop 2>/dev/null")
      end
      function handle.url(path) return ("http://127.0.0.1:%d%s"):format(port, path) end
      --- curl; returns status, body
      function handle.request(method, path, headers)
        local args = { "curl", "-s", "-X", method, "-w", "'\\n%{http_code}'" }
        for k, v in pairs(headers or {}) do args[#args + 1] = "-H " .. sh_quote(k .. ": " .. v) end
        args[#args + 1] = sh_quote(handle.url(path))
        local p = assert(io.popen(table.concat(args, " ")))
        local out = p:read("a")
        p:close()
        local body, status = out:match("^(.*)\n(%d+)$")
        return tonumber(status), body
      end
      return handle
    end
    if not read(prefix .. "/logs/start.log"):find("Address already in use", 1, true) then
      error("nginx did not start: " .. read(prefix .. "/logs/start.log"))
    end
  end
  error("no free port for nginx")
end

return M
