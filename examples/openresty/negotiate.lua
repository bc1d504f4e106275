-- negotiate.lua: an OpenResty handler module for a /negotiate location.
-- Browsers POST /negotiate; the answer is { url, accessToken } for the SignalR client.
-- One service object per worker, made in init_worker_by_lua: negotiate itself is pure
-- CPU with an access key (no I/O, never blocks the event loop).
local signalr = require "signalr"
local cjson = require "cjson.safe"

local _M = { _VERSION = "0.1.0" }

local svc

function _M.init_worker()
  local err
  svc, err = signalr.new {
    connection_string = os.getenv("AZURE_SIGNALR_CONNECTION_STRING"),
    application = os.getenv("SIGNALR_APPLICATION"),
  }
  if not svc then
    ngx.log(ngx.ERR, "signalr: ", tostring(err)) -- never contains the access key
  end
end

-- Who the user is comes from your own authentication; this example reads a header set
-- by an auth layer in front of it (never trust a client-supplied header in production).
local function current_user()
  return ngx.var.http_x_authenticated_user
end

function _M.handle(hub)
  if not svc then
    return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE)
  end
  local neg, err = svc:negotiate(hub, { user_id = current_user() })
  if not neg then
    ngx.log(ngx.ERR, "signalr negotiate: ", tostring(err))
    ngx.status = err.kind == "invalid_argument" and 400 or 500
    ngx.header["Content-Type"] = "application/json"
    return ngx.say(cjson.encode { error = err.message })
  end
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Cache-Control"] = "no-store"
  ngx.say(cjson.encode(neg))
end

return _M
