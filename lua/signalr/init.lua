--- azure-signalr: Azure SignalR Service for Lua.
-- The C core (`signalr.core`) does the work; this module names things.
local core = require "signalr.core"
local azure_cli = require "signalr.azure_cli"

local _M = {
  _VERSION = core.version,
  --- signalr.new{ connection_string = ... } or signalr.new{ endpoint = ..., credential = ... }
  new = core.new,
  --- What a connection string says, without its secrets.
  parse_connection_string = core.parse_connection_string,
  --- true when `v` is an error object returned by this library.
  is_error = core.is_error,
  --- error{ kind =, message =, ... }: an error object like the library's own.
  error = core.error,
  --- Message arguments are JSON: signalr.array(t) and signalr.object(t) mark how a table is
  --- encoded (an unmarked empty table is an object, `{}`); signalr.null is JSON null (the
  --- same value as cjson.null); signalr.json_encode(v) shows what would be sent.
  array = core.array,
  object = core.object,
  null = core.null,
  json_encode = core.json_encode,
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
  --- { client_id | object_id | resource_id }: IMDS, App Service, Cloud Shell, Azure Arc
  managed_identity = core.managed_identity,
  --- AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH
  environment = core.environment,
  --- { c1, c2, ... }: the first credential that yields a token
  chain = core.chain,
  --- static(token [, expires_on]): a fixed bearer token
  static = core.static_token,
  --- from_function(fn): fn() returns token [, expires_on]
  from_function = core.from_function,
}

-- Copies opts without the runner-only keys.
local function without(opts, ...)
  local out = {}
  for k, v in pairs(opts or {}) do out[k] = v end
  for _, k in ipairs { ... } do out[k] = nil end
  return out
end

--- { tenant_id?, command? = "az", timeout? = 10, runner? }: the Azure CLI's signed-in account.
function _M.credential.azure_cli(opts)
  if opts ~= nil and type(opts) ~= "table" then error("bad argument #1 to 'azure_cli' (table expected)", 2) end
  local o = without(opts, "command", "timeout")
  o.runner = o.runner or azure_cli.runner(opts)
  return core.azure_cli(o)
end

--- { tenant_id?, managed_identity_client_id?, authority_host? }: environment, workload
--- identity, managed identity, then the Azure CLI (DefaultAzureCredential's order).
function _M.credential.default(opts)
  if opts ~= nil and type(opts) ~= "table" then error("bad argument #1 to 'default' (table expected)", 2) end
  local o = without(opts)
  o.az_runner = o.az_runner or azure_cli.runner { tenant_id = o.tenant_id }
  return core.default(o)
end

return _M
