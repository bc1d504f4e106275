--- azure-signalr: Azure SignalR Service for Lua.
-- The C core (`signalr.core`) does the work; this module names things.
local core = require "signalr.core"

local _M = {
  _VERSION = core.version,
  --- signalr.new{ connection_string = ... } or signalr.new{ endpoint = ..., credential = ... }
  new = core.new,
  --- What a connection string says, without its secrets.
  parse_connection_string = core.parse_connection_string,
  --- true when `v` is an error object returned by this library.
  is_error = core.is_error,
}

--- Credentials: how the app server proves itself to the service.
_M.credential = {
  access_key = core.access_key,
}

return _M
