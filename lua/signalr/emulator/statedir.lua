-- The state directory: generated material (CA, certificate, keys, admin secret) that
-- survives restarts, written atomically and private (mode 0600) where it is secret.
local M = {}

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

function M.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

function M.read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local data = f:read("a")
  f:close()
  return data
end

function M.mkdir_p(dir)
  if M.exists(dir .. "/.") then return true end
  local ok = os.execute("mkdir -p -m 0700 " .. shell_quote(dir))
  if not ok then return nil, "cannot create directory " .. dir end
  return true
end

-- Writes `data` to `path` through a temporary file and a rename, so a reader never sees
-- half a file; `private` makes the file mode 0600 before any byte is written.
function M.write(path, data, private)
  local tmp = string.format("%s.tmp.%d.%d", path, os.time(), math.random(1, 1e9))
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  if private then
    f:close()
    if not os.execute("chmod 600 " .. shell_quote(tmp)) then
      os.remove(tmp)
      return nil, "cannot restrict the mode of " .. tmp
    end
    f, err = io.open(tmp, "wb")
    if not f then return nil, err end
  end
  local ok, werr = f:write(data)
  f:close()
  if not ok then os.remove(tmp) return nil, werr end
  local rok, rerr = os.rename(tmp, path)
  if not rok then os.remove(tmp) return nil, rerr end
  return true
end

-- Runs fn() while holding a lock directory (mkdir is atomic), so two emulators starting
-- on the same empty state directory do not both generate a CA. A lock older than 10 s
-- is taken to be stale (its owner died).
function M.with_lock(dir, fn, sleep)
  local lock = dir .. "/.lock"
  local waited = 0
  while not os.execute("mkdir " .. shell_quote(lock) .. " 2>/dev/null") do
    if waited >= 10 then
      os.execute("rmdir " .. shell_quote(lock) .. " 2>/dev/null")
      waited = 0
    else
      sleep(0.05)
      waited = waited + 0.05
    end
  end
  local ok, a, b = pcall(fn)
  os.execute("rmdir " .. shell_quote(lock) .. " 2>/dev/null")
  if not ok then error(a, 0) end
  return a, b
end

return M
