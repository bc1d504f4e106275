-- Runs the official @microsoft/signalr client (spec/interop/signalr_client.mjs, npm
-- packages pinned in spec/interop/package.json) against the emulator, trusting its CA
-- through NODE_EXTRA_CA_CERTS. The client prints one JSON line per event.
local cjson = require "cjson"
local emulator = require "spec.helpers.emulator"

local M = {}

M.INTEROP = emulator.ROOT .. "/spec/interop"

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

--- Fails clearly when node or the npm packages are missing.
function M.require_installed()
  local p = io.popen("test -f " .. shell_quote(M.INTEROP .. "/node_modules/@microsoft/signalr/package.json") ..
    " && node --version 2>&1")
  local version = p:read("*l")
  p:close()
  assert(version, "@microsoft/signalr is not installed: run `npm ci --prefix spec/interop` (.ci/setup does)")
end

--- For a spec's setup: checks the npm packages, starts the emulator; returns it, its
-- first resource and a file for the Node clients' stderr (named after `name`).
function M.session(name)
  M.require_installed()
  local emu = emulator.start()
  return emu, emu.resources.signalr1, emulator.state_dir() .. "/node-" .. name .. "-stderr.txt"
end

--- Starts a client for `hub` at `endpoint` with `token`; its stderr is appended to
-- `stderr_file`. Returns next_event() (the next decoded event line) and close().
function M.start(opts)
  local env = { PATH = os.getenv("PATH"), HOME = os.getenv("HOME") or "/tmp", NODE_EXTRA_CA_CERTS = opts.ca_file,
    EMU_ENDPOINT = opts.endpoint, EMU_HUB = opts.hub, EMU_TOKEN = opts.token }
  local parts = { "env", "-i" }
  for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. shell_quote(v) end
  parts[#parts + 1] = "timeout 90 node " .. shell_quote(M.INTEROP .. "/signalr_client.mjs")
  local pipe = assert(io.popen(table.concat(parts, " ") .. " 2>>" .. shell_quote(opts.stderr_file), "r"))
  local function next_event()
    local line = pipe:read("*l")
    assert(line, "the Node client ended without an event: " .. M.read_file(opts.stderr_file):sub(1, 2000))
    local ev = cjson.decode(line)
    assert(type(ev) == "table", "the Node client printed a line that is not a JSON object")
    return ev
  end
  local function close()
    local ok, _, code = pipe:close()
    return ok == true or code == 0
  end
  return next_event, close
end

return M
