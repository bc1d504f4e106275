-- signalr.resty: the SDK inside nginx (lua module, OpenResty's LuaJIT), every network call
-- over cosockets: access-key and Entra negotiate and REST against the emulator, and the
-- worker keeps serving other requests while a call waits on the network.
local cjson = require "cjson.safe"
local emulator = require "spec.helpers.emulator"
local hub_client = require "spec.helpers.hub_client"
local nginx_helper = require "spec.helpers.nginx"

local CONF = [[
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
master_process off;
error_log logs/error.log info;
pid logs/nginx.pid;
env SIGNALR_CS; env SIGNALR_ENDPOINT; env SIGNALR_AUTHORITY; env SIGNALR_TENANT;
env SIGNALR_CLIENT_ID; env SIGNALR_CLIENT_SECRET;
events {}
http {
    access_log off;
    lua_package_path "$prefix/lua/?.lua;$prefix/lua/?/init.lua;$prefix/?.lua;;";
    lua_package_cpath "$prefix/build/luajit/?.so;;";
    lua_ssl_trusted_certificate CA_FILE;
    lua_ssl_verify_depth 3;
    lua_shared_dict app_state 64k;
    init_worker_by_lua_block { require("spec.resty.app").init_worker() }
    server {
        listen 127.0.0.1:8080;
        location = /send { content_by_lua_block { require("spec.resty.app").send() } }
        location = /negotiate { content_by_lua_block { require("spec.resty.app").negotiate() } }
        location = /exists { content_by_lua_block { require("spec.resty.app").exists() } }
        location = /status { content_by_lua_block { require("spec.resty.app").status() } }
        location = /batch { content_by_lua_block { require("spec.resty.app").batch() } }
    }
}
]]

describe("signalr.resty over cosockets", function()
  local emu, nginx, res

  setup(function()
    math.randomseed(os.time())
    emu = emulator.start()
    res = emu.resources.signalr1
    local w = emu.world
    nginx = nginx_helper.start(nginx_helper.localize((CONF:gsub("CA_FILE", emu.ca_file))), {
      SIGNALR_CS = res.connection_string, SIGNALR_ENDPOINT = res.endpoint,
      SIGNALR_AUTHORITY = emu.authority, SIGNALR_TENANT = w.tenant_id,
      SIGNALR_CLIENT_ID = w.app_id, SIGNALR_CLIENT_SECRET = w.app_secret,
    })
  end)

  teardown(function()
    if nginx then nginx.stop() end
    if emu then emu:stop() end
  end)

  local function call(method, path)
    local status, body = nginx.request(method, path)
    return status, cjson.decode(body or "") or body
  end

  for _, auth in ipairs { "access", "entra" } do
    it("negotiates and sends through REST with " .. auth .. " auth; the client receives it", function()
      local user = "u-" .. auth
      local status, neg = call("POST", "/negotiate?auth=" .. auth .. "&user=" .. user)
      assert.equal(200, status, cjson.encode(neg))
      local client = assert(hub_client.connect { endpoint = res.endpoint, hub = "chat",
                                                 token = neg.accessToken, ca_file = emu.ca_file })
      local exists
      status, exists = call("GET", "/exists?auth=" .. auth .. "&user=" .. user)
      assert.equal(200, status, cjson.encode(exists))
      assert.is_true(exists.exists)
      local sent
      status, sent = call("POST", "/send?auth=" .. auth .. "&user=" .. user .. "&text=over-cosockets")
      assert.equal(200, status, cjson.encode(sent))
      local msg = assert(client:next_invocation(10, "fromNginx"))
      assert.same({ "over-cosockets" }, msg.arguments)
      client:close()
    end)
  end

  it("runs a batch on light threads; every send arrives", function()
    local _, neg = call("POST", "/negotiate?auth=access&user=batcher")
    local client = assert(hub_client.connect { endpoint = res.endpoint, hub = "chat",
                                               token = neg.accessToken, ca_file = emu.ca_file })
    local status, out = call("POST", "/batch?auth=entra&user=batcher&n=12")
    assert.equal(200, status, cjson.encode(out))
    assert.same({ ok = 12, n = 12 }, out)
    local seen = {}
    for _ = 1, 12 do
      local msg = assert(client:next_invocation(10, "fromBatch"))
      seen[msg.arguments[1]] = true
    end
    for i = 1, 12 do assert.is_true(seen[i]) end
    client:close()
  end)

  it("fetches the Entra token and the temporary key once for many calls", function()
    assert.equal(204, (emu:admin("DELETE", "/admin/counters")))
    for _ = 1, 5 do assert.equal(200, (call("POST", "/negotiate?auth=entra&user=x"))) end
    local _, counters = emu:admin("GET", "/admin/counters")
    local token_posts = counters.routes["POST /{tenant}/oauth2/v2.0/token"]
    local key_gets = counters.routes["GET /api/v1/auth/accessKey"]
    -- Fetched by the first test already: no new token or key requests at all.
    assert.is_nil(token_posts)
    assert.is_nil(key_gets)
  end)

  it("keeps serving other requests while a call waits on the network", function()
    -- The service answers the next send after 2 seconds; a blocking client would freeze
    -- the (single) worker, so /status could only ever report "done".
    assert.equal(201, (emu:admin("POST", "/admin/faults", {
      route = "/api/hubs/{hub}/users/{user}/:send", method = "POST", kind = "delay", delay = 2, count = 1 })))
    local out = os.tmpname()
    os.execute("curl -s -X POST " .. nginx_helper.sh_quote(nginx.url("/send?auth=access&user=nobody")) ..
      " > " .. nginx_helper.sh_quote(out) .. " 2>&1 &")
    local seen_in_flight = false
    for _ = 1, 2000 do
      local _, st = call("GET", "/status")
      if st.send == "in_flight" then
        seen_in_flight = true
        break
      end
    end
    assert.is_true(seen_in_flight, "the worker never answered while the send was pending")
    -- ... and the send itself still completes.
    local body
    for _ = 1, 2000 do
      local _, st = call("GET", "/status")
      if st.send == "done" then break end
    end
    body = nginx_helper.read(out)
    os.remove(out)
    assert.matches('"ok":true', body)
    emu:admin("DELETE", "/admin/faults")
  end)

  it("logs no secret or token in nginx's error log", function()
    local log = nginx.error_log()
    assert.is_nil(log:find(emu.world.app_secret, 1, true))
    assert.is_nil(log:find(emu.world.access_keys[1], 1, true))
    assert.is_nil(log:find("eyJ", 1, true))
  end)
end)
