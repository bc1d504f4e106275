-- The OpenResty quick start (examples/openresty) in a real nginx with the lua module
-- (Debian nginx + libnginx-mod-http-lua, OpenResty's LuaJIT): POST /negotiate answers a
-- token the service would accept. Run by scripts/check-openresty.
local token = require "spec.helpers.token"
local cjson = require "cjson.safe"

local nginx_helper = require "spec.helpers.nginx"
local KEY = "S3cretKeyValue0123456789abcdefghijklmnopqrs="

local function start_nginx(env)
  local conf = nginx_helper.localize(nginx_helper.read(nginx_helper.ROOT .. "/examples/openresty/nginx.conf"))
  return nginx_helper.start(conf, env)
end

local function request(nginx, ...) return nginx.request(...) end

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
    local status, body = request(nginx, "POST", "/negotiate", { ["X-Authenticated-User"] = "alice" })
    assert.equal(200, status)
    local neg = assert(cjson.decode(body))
    assert.equal("https://demo.service.signalr.net/client/?hub=myapp_chat", neg.url)
    local _, claims = token.decode(neg.accessToken)
    assert.equal("alice", claims["asrs.s.uid"])
    assert.equal("https://demo.service.signalr.net/client/?hub=myapp_chat", claims.aud)
    assert.is_true(token.verify(neg.accessToken, KEY))
  end)

  it("answers without a user id when no user is authenticated, and refuses GET", function()
    local status, body = request(nginx, "POST", "/negotiate")
    assert.equal(200, status)
    local _, claims = token.decode(cjson.decode(body).accessToken)
    assert.is_nil(claims["asrs.s.uid"])
    assert.equal(403, (request(nginx, "GET", "/negotiate")))
  end)

  it("answers 503 when the connection string is bad, and logs why without the key", function()
    local broken = start_nginx { AZURE_SIGNALR_CONNECTION_STRING = "Endpoint=ftp://x;AccessKey=" .. KEY }
    local status = request(broken, "POST", "/negotiate")
    broken.stop()
    assert.equal(503, status)
    local log = broken.error_log()
    assert.matches("Endpoint", log)
    assert.is_nil(log:find(KEY, 1, true))
  end)
end)
