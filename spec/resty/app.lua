-- A small OpenResty app for the specs: the SDK driven over cosockets (signalr.resty).
-- Configured through environment variables the spec sets (nginx `env` directives).
local signalr = require "signalr"
local resty = require "signalr.resty"
local cjson = require "cjson.safe"

local _M = {}

local access, entra
local state = ngx.shared.app_state

function _M.init_worker()
  access = assert(resty.new { connection_string = os.getenv("SIGNALR_CS") })
  local cred = assert(signalr.credential.client_secret {
    tenant_id = os.getenv("SIGNALR_TENANT"), client_id = os.getenv("SIGNALR_CLIENT_ID"),
    client_secret = os.getenv("SIGNALR_CLIENT_SECRET"), authority_host = os.getenv("SIGNALR_AUTHORITY"),
  })
  entra = assert(resty.new { endpoint = os.getenv("SIGNALR_ENDPOINT"), credential = cred })
end

local function reply(status, body)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(body))
end

local function service()
  return ngx.var.arg_auth == "entra" and entra or access
end

-- POST /send?auth=access|entra&user=..: a REST send; records its progress in a shared dict.
function _M.send()
  state:set("send", "in_flight")
  local ok, err = service():hub("chat"):send_to_user(ngx.var.arg_user, "fromNginx", { ngx.var.arg_text or "hi" })
  state:set("send", "done")
  if not ok then return reply(502, { error = tostring(err), kind = err.kind }) end
  reply(200, { ok = true })
end

-- POST /negotiate?auth=access|entra&user=..
function _M.negotiate()
  local neg, err = service():negotiate("chat", { user_id = ngx.var.arg_user })
  if not neg then return reply(502, { error = tostring(err), kind = err.kind }) end
  reply(200, neg)
end

-- GET /exists?user=..
function _M.exists()
  local exists, err = service():hub("chat"):user_exists(ngx.var.arg_user)
  if exists == nil then return reply(502, { error = tostring(err) }) end
  reply(200, { exists = exists })
end

-- POST /batch?auth=..&user=..&n=..: n sends in one batch, 4 in flight.
function _M.batch()
  local b = service():batch { max_in_flight = 4 }
  local hub = b:hub("chat")
  local n = tonumber(ngx.var.arg_n)
  for i = 1, n do hub:send_to_user(ngx.var.arg_user, "fromBatch", { i }) end
  local results = b:run()
  local ok = 0
  for i = 1, n do
    if results[i][1] == true then ok = ok + 1 end
  end
  reply(200, { ok = ok, n = #results })
end

function _M.status()
  reply(200, { send = state:get("send") or "idle" })
end

return _M
