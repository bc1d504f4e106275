-- The OData `filter` subset that :execute accepts, evaluated against a connection
-- { userId, connectionId, groups = { name, ... } }:
--   comparisons   userId eq 'a'   connectionId ne 'b'   (eq ne gt ge lt le)
--   membership    'room1' in groups     userId in ('a', 'b')
--   functions     startswith(userId, 'x')  endswith(...)  contains(...)
--   logic         and, or, not, parentheses; literals 'text' ('' escapes '), null, true, false, numbers
local M = {}

M.MAX_LENGTH = 4096

local FIELDS = { userid = "userId", connectionid = "connectionId", groups = "groups" }
local COMPARE = { eq = true, ne = true, gt = true, ge = true, lt = true, le = true }
local FUNCS = { startswith = true, endswith = true, contains = true }

local function tokenize(s)
  local tokens, i, n = {}, 1, #s
  while i <= n do
    local c = s:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif c == "(" or c == ")" or c == "," then
      tokens[#tokens + 1] = { t = c }
      i = i + 1
    elseif c == "'" then
      local buf, j = {}, i + 1
      while true do
        if j > n then return nil, "unterminated string literal" end
        local d = s:sub(j, j)
        if d == "'" then
          if s:sub(j + 1, j + 1) == "'" then buf[#buf + 1] = "'"; j = j + 2
          else break end
        else
          buf[#buf + 1] = d
          j = j + 1
        end
      end
      tokens[#tokens + 1] = { t = "lit", v = table.concat(buf) }
      i = j + 1
    elseif c:match("[%-%d]") then
      local num = s:match("^%-?%d+%.?%d*", i)
      if not num or not tonumber(num) then return nil, "bad number at character " .. i end
      tokens[#tokens + 1] = { t = "lit", v = tonumber(num) }
      i = i + #num
    elseif c:match("[%a_]") then
      local word = s:match("^[%w_%.]+", i)
      tokens[#tokens + 1] = { t = "word", v = word, lv = word:lower() }
      i = i + #word
    else
      return nil, "unexpected character at " .. i
    end
  end
  return tokens
end

local Parser = {}
Parser.__index = Parser

function Parser:peek() return self.tokens[self.pos] end
function Parser:next()
  local t = self.tokens[self.pos]
  self.pos = self.pos + 1
  return t
end
function Parser:expect(kind)
  local t = self:next()
  if not t or t.t ~= kind then error("expected '" .. kind .. "'", 0) end
  return t
end
function Parser:is_word(w)
  local t = self:peek()
  return t and t.t == "word" and t.lv == w
end

function Parser:operand()
  local t = self:next()
  if not t then error("unexpected end of filter", 0) end
  if t.t == "lit" then return { k = "lit", v = t.v } end
  if t.t == "word" then
    if t.lv == "null" then return { k = "lit", v = nil } end
    if t.lv == "true" or t.lv == "false" then return { k = "lit", v = t.lv == "true" } end
    local field = FIELDS[t.lv]
    if not field then error("unknown field '" .. t.v .. "'", 0) end
    return { k = "field", v = field }
  end
  if t.t == "(" then
    local list = { self:operand() }
    while self:peek() and self:peek().t == "," do
      self:next()
      list[#list + 1] = self:operand()
    end
    self:expect(")")
    return { k = "list", v = list }
  end
  error("unexpected '" .. t.t .. "'", 0)
end

function Parser:primary()
  local t = self:peek()
  if not t then error("unexpected end of filter", 0) end
  if t.t == "(" then
    -- a parenthesised expression (a literal list only follows 'in')
    self:next()
    local e = self:expr()
    self:expect(")")
    return e
  end
  if t.t == "word" and FUNCS[t.lv] then
    self:next()
    self:expect("(")
    local a = self:operand()
    self:expect(",")
    local b = self:operand()
    self:expect(")")
    return { k = "func", f = t.lv, a = a, b = b }
  end
  local left = self:operand()
  local op = self:next()
  if not op or op.t ~= "word" then error("expected an operator", 0) end
  if op.lv == "in" then
    return { k = "in", a = left, b = self:operand() }
  end
  if not COMPARE[op.lv] then error("unknown operator '" .. op.v .. "'", 0) end
  return { k = "cmp", op = op.lv, a = left, b = self:operand() }
end

function Parser:unary()
  if self:is_word("not") then
    self:next()
    return { k = "not", e = self:unary() }
  end
  return self:primary()
end

function Parser:conj()
  local e = self:unary()
  while self:is_word("and") do
    self:next()
    e = { k = "and", a = e, b = self:unary() }
  end
  return e
end

function Parser:expr()
  local e = self:conj()
  while self:is_word("or") do
    self:next()
    e = { k = "or", a = e, b = self:conj() }
  end
  return e
end

-- Returns the parsed filter, nil (no filter), or nil and a reason.
function M.parse(text)
  if text == nil or text:match("^%s*$") then return nil end
  if #text > M.MAX_LENGTH then return nil, "filter longer than " .. M.MAX_LENGTH .. " characters" end
  local tokens, terr = tokenize(text)
  if not tokens then return nil, terr end
  local p = setmetatable({ tokens = tokens, pos = 1 }, Parser)
  local ok, e = pcall(p.expr, p)
  if not ok then return nil, e end
  if p.pos <= #tokens then return nil, "unexpected text after the expression" end
  return e
end

local function value(o, ctx)
  if o.k == "lit" then return o.v end
  if o.k == "field" then return ctx[o.v] end
  local out = {}
  for i, x in ipairs(o.v) do out[i] = value(x, ctx) end
  return out
end

local function compare(op, a, b)
  if op == "eq" then return a == b end
  if op == "ne" then return a ~= b end
  if type(a) ~= type(b) or (type(a) ~= "string" and type(a) ~= "number") then return false end
  if op == "gt" then return a > b end
  if op == "ge" then return a >= b end
  if op == "lt" then return a < b end
  return a <= b
end

function M.eval(e, ctx)
  local k = e.k
  if k == "and" then return M.eval(e.a, ctx) and M.eval(e.b, ctx) end
  if k == "or" then return M.eval(e.a, ctx) or M.eval(e.b, ctx) end
  if k == "not" then return not M.eval(e.e, ctx) end
  if k == "cmp" then return compare(e.op, value(e.a, ctx), value(e.b, ctx)) end
  if k == "in" then
    local needle, hay = value(e.a, ctx), value(e.b, ctx)
    if type(hay) ~= "table" then return false end
    for _, v in ipairs(hay) do if v == needle then return true end end
    return false
  end
  if k == "func" then
    local a, b = value(e.a, ctx), value(e.b, ctx)
    if type(a) ~= "string" or type(b) ~= "string" then return false end
    if e.f == "startswith" then return a:sub(1, #b) == b end
    if e.f == "endswith" then return b == "" or a:sub(-#b) == b end
    return a:find(b, 1, true) ~= nil
  end
  return false
end

return M
