-- A MessagePack decoder for REST bodies sent as application/x-msgpack: enough of the
-- format for PayloadMessage (maps, arrays, strings, binary, numbers, nil, booleans).
-- Arrays come back marked with json.array_mt so they re-encode as JSON arrays; binary
-- becomes base64 text, as the JSON hub protocol carries byte arrays.
local json = require "signalr.emulator.json"

local sunpack, byte = string.unpack, string.byte

local M = {}

local MAX_DEPTH = 64

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = byte(s, i, i + 2)
    local v = (a << 16) | ((b or 0) << 8) | (c or 0)
    for k = 1, 4 do
      if k <= (#s - i + 1) + 1 then
        local idx = ((v >> (24 - 6 * k)) & 63) + 1
        out[#out + 1] = B64:sub(idx, idx)
      else
        out[#out + 1] = "="
      end
    end
  end
  return table.concat(out)
end

local decode_at

local function need(s, pos, n)
  if pos + n - 1 > #s then error("truncated", 0) end
end

local function collection(s, pos, n, is_map, depth)
  if depth > MAX_DEPTH then error("nesting too deep", 0) end
  if n > #s - pos + 1 then error("truncated", 0) end  -- each element takes at least a byte
  if is_map then
    local t = {}
    for _ = 1, n do
      local k, v
      k, pos = decode_at(s, pos, depth + 1)
      v, pos = decode_at(s, pos, depth + 1)
      if type(k) ~= "string" then error("map keys must be strings", 0) end
      t[k] = v
    end
    return t, pos
  end
  local t = json.array()
  for i = 1, n do
    t[i], pos = decode_at(s, pos, depth + 1)
    if t[i] == nil then t[i] = json.null end
  end
  return t, pos
end

local function sized(s, pos, fmt)
  need(s, pos, string.packsize(fmt))
  return sunpack(fmt, s, pos)
end

function decode_at(s, pos, depth)
  need(s, pos, 1)
  local b = byte(s, pos)
  pos = pos + 1
  if b <= 0x7f then return b, pos end
  if b >= 0xe0 then return b - 256, pos end
  if b >= 0xa0 and b <= 0xbf then
    local n = b - 0xa0
    need(s, pos, n)
    return s:sub(pos, pos + n - 1), pos + n
  end
  if b >= 0x90 and b <= 0x9f then return collection(s, pos, b - 0x90, false, depth) end
  if b >= 0x80 and b <= 0x8f then return collection(s, pos, b - 0x80, true, depth) end
  if b == 0xc0 then return json.null, pos end
  if b == 0xc2 then return false, pos end
  if b == 0xc3 then return true, pos end
  local n
  if b == 0xd9 or b == 0xda or b == 0xdb or b == 0xc4 or b == 0xc5 or b == 0xc6 then
    local fmt = ({ [0xd9] = ">I1", [0xda] = ">I2", [0xdb] = ">I4", [0xc4] = ">I1", [0xc5] = ">I2", [0xc6] = ">I4" })[b]
    n, pos = sized(s, pos, fmt)
    need(s, pos, n)
    local str = s:sub(pos, pos + n - 1)
    if b >= 0xc4 and b <= 0xc6 then str = base64(str) end
    return str, pos + n
  end
  if b == 0xdc or b == 0xdd then
    n, pos = sized(s, pos, b == 0xdc and ">I2" or ">I4")
    return collection(s, pos, n, false, depth)
  end
  if b == 0xde or b == 0xdf then
    n, pos = sized(s, pos, b == 0xde and ">I2" or ">I4")
    return collection(s, pos, n, true, depth)
  end
  local fmts = { [0xcc] = ">I1", [0xcd] = ">I2", [0xce] = ">I4", [0xcf] = ">I8",
    [0xd0] = ">i1", [0xd1] = ">i2", [0xd2] = ">i4", [0xd3] = ">i8", [0xca] = ">f", [0xcb] = ">d" }
  if fmts[b] then return sized(s, pos, fmts[b]) end
  error(("unsupported MessagePack type 0x%02x"):format(b), 0)
end

-- Returns the decoded value, or nil and a reason (never raises).
function M.decode(s)
  local ok, v, pos = pcall(decode_at, s, 1, 0)
  if not ok then return nil, v end
  if pos ~= #s + 1 then return nil, "trailing bytes" end
  return v
end

M.base64 = base64
return M
