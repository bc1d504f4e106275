-- negotiate.lua: access-key negotiate tokens per second from Lua (the SDK's hot path:
-- svc:negotiate with a user id and a role). Prints "<tokens per second>".
local signalr = require "signalr"

local seconds = tonumber(arg[1]) or 2
local svc = assert(signalr.new {
  connection_string =
    "Endpoint=https://demo.service.signalr.net;AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789;Version=1.0;",
})
local opts = { user_id = "alice", roles = "admin" }
-- Same token shape as the peers: check it once.
local neg = assert(svc:negotiate("chat", opts))
assert(neg.url == "https://demo.service.signalr.net/client/?hub=chat")

local clock = os.clock
local count, start = 0, clock()
local deadline = start + seconds
local t = start
while t < deadline do
  for _ = 1, 1000 do svc:negotiate("chat", opts) end
  count = count + 1000
  t = clock()
end
print(string.format("%.0f", count / (t - start)))
