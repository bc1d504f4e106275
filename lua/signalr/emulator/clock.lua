-- Emulator time: the wall clock plus an offset that the admin API can move forward,
-- so specs can expire tokens, temporary keys and group memberships without waiting.
local os_time = os.time

local clock = {}
clock.__index = clock

local M = {}

function M.new(opts)
  opts = opts or {}
  return setmetatable({ offset = opts.offset or 0, source = opts.source or os_time }, clock)
end

-- Seconds since the epoch (integer-valued: every consumer works in whole seconds,
-- like JWT `exp`/`nbf`).
function clock:now()
  return self.source() + self.offset
end

-- Moves emulator time forward by `seconds` (never backward: expired things stay expired).
function clock:advance(seconds)
  if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 or seconds == math.huge then
    return nil, "advance must be a finite number of seconds >= 0"
  end
  self.offset = self.offset + math.floor(seconds)
  return self:now()
end

return M
