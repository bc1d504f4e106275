--- signalr.resty.http: performs the SDK's request descriptions over OpenResty cosockets
-- (HTTP/1.1, keep-alive pools, TLS verified against lua_ssl_trusted_certificate).
-- Written here because Debian ships no lua-resty-http; it does only what the SDK's
-- requests need: Content-Length bodies out, Content-Length, chunked or close-delimited
-- bodies in.
local ngx = ngx
local tcp = ngx.socket.tcp
local concat = table.concat
local lower = string.lower
local tonumber = tonumber

local _M = { _VERSION = "0.1.0" }

local MAX_BODY = 16 * 1024 * 1024
local KEEPALIVE_MS = 60000
local POOL_SIZE = 64

local function parse_url(url)
  local scheme, authority, path = url:match("^(https?)://([^/?#]+)(.*)$")
  if not scheme then return nil end
  local host, port = authority:match("^%[(.+)%]:?(%d*)$") -- IPv6 literal
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host then return nil end
  local default = scheme == "https" and 443 or 80
  port = tonumber(port) or default
  if path == "" then path = "/" end
  local host_header = port == default and authority:gsub(":%d+$", "") or authority
  return scheme, host, port, path, host_header
end

-- The outcome of a failed exchange in the form the op layer reads.
local function failure(kind, message)
  return { error = kind, message = message }
end

local function classify(err)
  if err == "timeout" then return "timeout" end
  if err == "closed" or (err and err:find("reset", 1, true)) then return "reset" end
  return "other"
end

local function read_chunked(sock)
  local parts, total = {}, 0
  while true do
    local line, err = sock:receive("*l")
    if not line then return nil, err end
    local size = tonumber(line:match("^%x+"), 16)
    if not size then return nil, "bad chunk size" end
    if size == 0 then
      repeat -- trailers, up to the blank line
        line, err = sock:receive("*l")
        if not line then return nil, err end
      until line == ""
      return concat(parts)
    end
    total = total + size
    if total > MAX_BODY then return nil, "the response is larger than 16 MB" end
    local data
    data, err = sock:receive(size)
    if not data then return nil, err end
    parts[#parts + 1] = data
    line, err = sock:receive("*l") -- CRLF after the chunk
    if not line then return nil, err end
  end
end

local function read_response(sock, method)
  local status_line, err = sock:receive("*l")
  if not status_line then return nil, err end
  local status = tonumber(status_line:match("^HTTP/1%.[01] (%d%d%d)"))
  if not status then return nil, "not an HTTP/1.x response" end
  local headers = {}
  while true do
    local line
    line, err = sock:receive("*l")
    if not line then return nil, err end
    if line == "" then break end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then headers[lower(name)] = value end
  end
  if status == 100 then return read_response(sock, method) end
  local body = ""
  local keepalive = lower(headers.connection or "") ~= "close"
  if method ~= "HEAD" and status ~= 204 and status ~= 304 and status >= 200 then
    if lower(headers["transfer-encoding"] or ""):find("chunked", 1, true) then
      body, err = read_chunked(sock)
    elseif headers["content-length"] then
      local n = tonumber(headers["content-length"])
      if not n or n > MAX_BODY then return nil, "bad or oversized Content-Length" end
      if n > 0 then body, err = sock:receive(n) else body = "" end
    else
      keepalive = false
      body, err = sock:receive("*a")
      if body and #body > MAX_BODY then return nil, "the response is larger than 16 MB" end
    end
    if not body then return nil, err end
  end
  return { status = status, headers = headers, body = body }, nil, keepalive
end

--- Performs one request description { method, url, headers, body, timeout,
-- connect_timeout } and returns { status, headers, body } or { error, message }.
function _M.request(req)
  local scheme, host, port, path, host_header = parse_url(req.url)
  if not scheme then return failure("other", "not an http(s) URL") end
  local sock = tcp()
  local total_ms = (req.timeout or 30) * 1000
  sock:settimeouts((req.connect_timeout or 10) * 1000, total_ms, total_ms)
  local pool = scheme .. ":" .. host .. ":" .. port
  -- nginx resolves names only through a `resolver` directive, never /etc/hosts; localhost
  -- (the emulator, local proxies) is the loopback address without one.
  local addr = host == "localhost" and "127.0.0.1" or host
  local ok, err = sock:connect(addr, port, { pool = pool })
  if not ok then
    return failure(err == "timeout" and "timeout" or "connect", "connect to " .. host .. ":" .. port .. ": " .. err)
  end
  if scheme == "https" and sock:getreusedtimes() == 0 then
    ok, err = sock:sslhandshake(nil, host, true)
    if not ok then
      sock:close()
      return failure("tls", "TLS with " .. host .. ": " .. tostring(err))
    end
  end
  local lines = { req.method, " ", path, " HTTP/1.1\r\nHost: ", host_header, "\r\n" }
  local has_length = false
  for name, value in pairs(req.headers or {}) do
    lines[#lines + 1] = name .. ": " .. value .. "\r\n"
    if lower(name) == "content-length" then has_length = true end
  end
  local body = req.body
  if not has_length and (body or req.method == "POST" or req.method == "PUT") then
    lines[#lines + 1] = "Content-Length: " .. (body and #body or 0) .. "\r\n"
  end
  lines[#lines + 1] = "User-Agent: azure-signalr-lua-resty/" .. _M._VERSION .. "\r\n\r\n"
  if body then lines[#lines + 1] = body end
  ok, err = sock:send(lines)
  if not ok then
    sock:close()
    return failure(classify(err), "send: " .. err)
  end
  local resp, keepalive
  resp, err, keepalive = read_response(sock, req.method)
  if not resp then
    sock:close()
    return failure(classify(err), "receive: " .. tostring(err))
  end
  if keepalive then sock:setkeepalive(KEEPALIVE_MS, POOL_SIZE) else sock:close() end
  return resp
end

return _M
