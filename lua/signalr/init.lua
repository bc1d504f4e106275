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
-- Microsoft Entra ID credentials return the credential, or nil and an error object when
-- they are not configured; each keeps its own token cache (see csrc/credential.h).
_M.credential = {
  access_key = core.access_key,
  --- { tenant_id, client_id, client_secret, authority_host? }
  client_secret = core.client_secret,
  --- { tenant_id, client_id, certificate_path | certificate, private_key[_path]?, password?,
  ---   send_certificate_chain?, algorithm = "RS256" | "PS256", authority_host? }
  certificate = core.certificate,
  --- { tenant_id, client_id, assertion = function | assertion_file = path, authority_host? }
  client_assertion = core.client_assertion,
  --- { tenant_id?, client_id?, token_file_path? } defaulting to AZURE_TENANT_ID,
  --- AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE
  workload_identity = core.workload_identity,
  --- static(token [, expires_on]): a fixed bearer token
  static = core.static_token,
  --- from_function(fn): fn() returns token [, expires_on]
  from_function = core.from_function,
}

return _M
