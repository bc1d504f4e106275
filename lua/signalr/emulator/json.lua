-- JSON for the emulator's answers. Decoding is lua-cjson's (safe variant); encoding is
-- done here because Debian's lua-cjson 2.1.0 cannot tell an empty array from an empty
-- object and prints integers through %.14g. `raw_members` returns the exact source text
-- of each top-level member, so message arguments reach clients byte for byte.
local cjson = require "cjson.safe"

local byte, concat, format = string.byte, table.concat, string.format
local mtype = math.type

local M = {}

M.null = cjson.null
M.array_mt = { __name = "json.array" }

-- Marks a table as a JSON array (needed only when it may be empty).
function M.array(t)
  return setmetatable(t or {}, M.array_mt)
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function escape_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or format("\\u%04x", byte(c))
  end) .. '"'
end

local function is_array(t)
  if getmetatable(t) == M.array_mt then return true end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local encode_value

local function encode_table(t, out, depth)
  if depth > 100 then error("json: nesting too deep", 0) end
  if is_array(t) then
    out[#out + 1] = "["
    for i = 1, #t do
      if i > 1 then out[#out + 1] = "," end
      encode_value(t[i], out, depth + 1)
    end
    out[#out + 1] = "]"
    return
  end
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then error("json: object keys must be strings", 0) end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  out[#out + 1] = "{"
  for i, k in ipairs(keys) do
    if i > 1 then out[#out + 1] = "," end
    out[#out + 1] = escape_string(k)
    out[#out + 1] = ":"
    encode_value(t[k], out, depth + 1)
  end
  out[#out + 1] = "}"
end

function encode_value(v, out, depth)
  local tv = type(v)
  if v == nil or v == cjson.null then
    out[#out + 1] = "null"
  elseif tv == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif tv == "number" then
    if v ~= v or v == math.huge or v == -math.huge then error("json: cannot encode NaN or infinity", 0) end
    if mtype(v) == "integer" then
      out[#out + 1] = format("%d", v)
    elseif v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then
      out[#out + 1] = format("%d", math.tointeger(v))
    else
      out[#out + 1] = format("%.17g", v)
    end
  elseif tv == "string" then
    out[#out + 1] = escape_string(v)
  elseif tv == "table" then
    if getmetatable(v) and getmetatable(v).__json_raw then
      out[#out + 1] = v[1]
    else
      encode_table(v, out, depth)
    end
  else
    error("json: cannot encode a " .. tv, 0)
  end
end

local raw_mt = { __json_raw = true }
-- Wraps already-encoded JSON text so encode() inserts it as is.
function M.raw(text)
  return setmetatable({ text }, raw_mt)
end

function M.encode(v)
  local out = {}
  encode_value(v, out, 0)
  return concat(out)
end

-- lua-cjson 2.1.0 decodes every number as a float on Lua 5.4: make integral values
-- integers again so "port": 0 is the integer 0.
local function integers(v, depth)
  if type(v) == "number" then
    if mtype(v) == "float" and v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then
      return math.tointeger(v)
    end
  elseif type(v) == "table" and depth < 1000 then
    for k, x in pairs(v) do v[k] = integers(x, depth + 1) end
  end
  return v
end

-- Returns the value, or nil and a message (never raises).
function M.decode(text)
  if type(text) ~= "string" then return nil, "not a string" end
  local v, err = cjson.decode(text)
  if v == nil and err then return nil, err end
  return integers(v, 0)
end

-------------------------------------------------------------------------------
-- Raw member extraction: a minimal scanner over already-valid JSON (call decode first).

local WS = { [32] = true, [9] = true, [10] = true, [13] = true }

local function skip_ws(s, i)
  while WS[byte(s, i)] do i = i + 1 end
  return i
end

local function scan_string(s, i) -- s:sub(i, i) == '"'; returns index after the closing quote
  i = i + 1
  while true do
    local c = byte(s, i)
    if c == nil then return nil end
    if c == 92 then i = i + 2
    elseif c == 34 then return i + 1
    else i = i + 1 end
  end
end

local function scan_value(s, i)
  i = skip_ws(s, i)
  local c = byte(s, i)
  if c == 34 then return scan_string(s, i) end
  if c == 123 or c == 91 then
    local depth = 0
    while true do
      c = byte(s, i)
      if c == nil then return nil end
      if c == 34 then
        i = scan_string(s, i)
        if not i then return nil end
      else
        if c == 123 or c == 91 then depth = depth + 1
        elseif c == 125 or c == 93 then
          depth = depth - 1
          if depth == 0 then return i + 1 end
        end
        i = i + 1
      end
    end
  end
  local j = s:find("[%s,%]}]", i)
  return j or #s + 1
end

-- For a JSON object text, returns { name = raw value text } of its top-level members.
function M.raw_members(s)
  local members = {}
  local i = skip_ws(s, 1)
  if byte(s, i) ~= 123 then return nil end
  i = skip_ws(s, i + 1)
  if byte(s, i) == 125 then return members end
  while true do
    if byte(s, i) ~= 34 then return nil end
    local key_end = scan_string(s, i)
    if not key_end then return nil end
    local key = cjson.decode(s:sub(i, key_end - 1))
    i = skip_ws(s, key_end)
    if byte(s, i) ~= 58 then return nil end
    local vstart = skip_ws(s, i + 1)
    local vend = scan_value(s, vstart)
    if not vend then return nil end
    members[key] = s:sub(vstart, vend - 1)
    i = skip_ws(s, vend)
    local c = byte(s, i)
    if c == 44 then i = skip_ws(s, i + 1)
    elseif c == 125 then return members
    else return nil end
  end
end

return M
