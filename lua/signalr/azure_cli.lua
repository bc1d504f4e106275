--- The Azure CLI runner behind signalr.credential.azure_cli and the default chain.
-- The C core asks for a token through a callback (it never starts processes itself); this
-- runner answers with `az account get-access-token --output json --scope <scope>
-- [--tenant t]`, run with io.popen under a 10 s `timeout`. io.popen blocks: under OpenResty
-- give your own runner (e.g. over ngx.pipe) as options.runner.
--
-- A runner returns the command's JSON output, or nil and a reason; a reason starting with
-- "unavailable: " (az missing, not logged in) lets a chain move on to its next credential.
local _M = {}

local SCOPE = "https://signalr.azure.com/.default"

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function read_all(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a") or ""
  f:close()
  return s
end

local has_timeout
local function timeout_prefix(seconds)
  if has_timeout == nil then
    local p = io.popen("command -v timeout 2>/dev/null")
    has_timeout = p and (p:read("*a") or ""):find("timeout", 1, true) ~= nil
    if p then p:close() end
  end
  return has_timeout and ("timeout " .. string.format("%d", seconds) .. " ") or ""
end

-- The first meaningful line of az's stderr (it never holds the token).
local function reason(stderr)
  for line in stderr:gmatch("[^\r\n]+") do
    local l = line:gsub("^%s+", ""):gsub("^ERROR:%s*", "")
    if l ~= "" and not l:find("^WARNING") then return l:sub(1, 300) end
  end
  return nil
end

--- runner{ tenant_id?, command? = "az", timeout? = 10 } -> function() -> json | nil, reason
function _M.runner(opts)
  opts = opts or {}
  local command = opts.command or "az"
  local tenant = opts.tenant_id
  local seconds = opts.timeout or 10
  if type(command) ~= "string" or command == "" then error("bad option 'command': a string expected", 2) end
  if tenant ~= nil and (type(tenant) ~= "string" or not tenant:match("^[%w%.%-_]+$")) then
    error("bad option 'tenant_id': a tenant GUID or domain name expected", 2)
  end
  if type(seconds) ~= "number" or seconds <= 0 then error("bad option 'timeout': seconds expected", 2) end
  return function()
    local args = { quote(command), "account", "get-access-token", "--output", "json", "--scope", quote(SCOPE) }
    if tenant then
      args[#args + 1] = "--tenant"
      args[#args + 1] = quote(tenant)
    end
    local errfile = os.tmpname()
    local cmd = timeout_prefix(seconds) .. table.concat(args, " ") .. " 2>" .. quote(errfile) .. " </dev/null"
    local p = io.popen(cmd, "r")
    if not p then
      os.remove(errfile)
      return nil, "unavailable: cannot start " .. command
    end
    local out = p:read("*a") or ""
    p:close()
    local stderr = read_all(errfile)
    os.remove(errfile)
    if out:find('"accessToken"', 1, true) then return out end
    local why = reason(stderr)
    if not why then
      return nil, ("unavailable: %s gave no token (no answer within %d s?)"):format(command, seconds)
    end
    if why:find("not found", 1, true) or why:find("No such file", 1, true) or why:find("az login", 1, true)
        or why:find("az account set", 1, true) or why:find("failed to run command", 1, true) then
      return nil, "unavailable: " .. why
    end
    return nil, why
  end
end

return _M
