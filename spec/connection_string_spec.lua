-- Connection strings: every key and AuthType, case, whitespace, duplicates, bad forms.
-- No error may ever contain the access key or the client secret.
local signalr = require "signalr"

local KEY = "S3cretKeyValue0123456789abcdefghijklmnopqrs="
local SECRET = "Cl1entSecretValue~xyz"

local function parse(s) return signalr.parse_connection_string(s) end

local function assert_no_secret(text)
  assert.is_nil(text:find(KEY, 1, true), "the access key leaked")
  assert.is_nil(text:find(KEY:sub(1, 12), 1, true), "part of the access key leaked")
  assert.is_nil(text:find(SECRET, 1, true), "the client secret leaked")
end

local function assert_error(s, pattern)
  local info, err = parse(s)
  local shown = s:gsub(KEY, "<key>"):gsub(SECRET, "<secret>")
  assert.is_nil(info, "expected a parse error for: " .. shown)
  assert.equal("invalid_argument", err.kind)
  assert.matches(pattern, err.message)
  assert_no_secret(tostring(err))
  assert_no_secret(err.message)
  -- signalr.new reports the same error.
  local svc, err2 = signalr.new { connection_string = s }
  assert.is_nil(svc)
  assert.equal(err.message, err2.message)
  return err
end

describe("connection strings", function()
  it("reads every key", function()
    local info = assert(parse("Endpoint=https://x.service.signalr.net;AccessKey=" .. KEY ..
      ";Version=1.0;Port=8443;ClientEndpoint=https://client.contoso.com/c;" ..
      "ServerEndpoint=https://server.contoso.com/s;"))
    assert.same({
      endpoint = "https://x.service.signalr.net:8443", port = 8443, version = "1.0",
      client_endpoint = "https://client.contoso.com/c", server_endpoint = "https://server.contoso.com/s",
      auth_type = "accesskey", has_access_key = true, has_client_secret = false,
    }, info)
  end)

  it("matches keys case-insensitively and trims keys and values", function()
    local info = assert(parse("  ENDPOINT =  https://X.Service.SignalR.net/  ;\taccesskey\t= " .. KEY ..
      " ; vErSiOn = 1.0 "))
    assert.equal("https://x.service.signalr.net", info.endpoint)
    assert.equal("1.0", info.version)
    assert.is_true(info.has_access_key)
  end)

  it("keeps '=' inside values (base64 keys end with '=')", function()
    local svc = assert(signalr.new { connection_string = "Endpoint=https://x;AccessKey=abc==" })
    local token = require "spec.helpers.token"
    assert.is_true(token.verify(svc:negotiate("chat").accessToken, "abc=="))
  end)

  it("drops empty parts and ignores parts without '=' and unknown keys", function()
    local info = assert(parse(";;Endpoint=https://x;;garbage;AccessKey=" .. KEY .. ";NewKey=1;;"))
    assert.equal("https://x", info.endpoint)
  end)

  it("drops the path of Endpoint and applies Port", function()
    assert.equal("https://x", parse("Endpoint=https://x/some/path/;AccessKey=k").endpoint)
    assert.equal("http://localhost:8888", parse("Endpoint=http://localhost;Port=8888;AccessKey=k").endpoint)
    assert.equal("https://x", parse("Endpoint=https://x:8080;Port=443;AccessKey=k").endpoint)
  end)

  it("keeps the path of ServerEndpoint for the accessKey URL", function()
    local svc = assert(signalr.new { connection_string =
      "Endpoint=https://x;AccessKey=k;ServerEndpoint=https://gateway.contoso.com/signalr/" })
    assert.equal("https://gateway.contoso.com/signalr/api/v1/auth/accessKey", svc:info().access_key_url)
  end)

  it("accepts each AuthType, case-insensitively", function()
    assert.equal("azure", parse("Endpoint=https://x;AuthType=Azure").auth_type)
    local msi = parse("Endpoint=https://x;AuthType=azure.msi;ClientId=cid")
    assert.equal("azure.msi", msi.auth_type)
    assert.equal("cid", msi.client_id)
    assert.equal("azure.msi", parse("Endpoint=https://x;AuthType=AZURE.MSI").auth_type)
    local app = parse("Endpoint=https://x;AuthType=azure.app;ClientId=c;TenantId=t;ClientSecret=" .. SECRET)
    assert.equal("azure.app", app.auth_type)
    assert.equal("t", app.tenant_id)
    assert.is_true(app.has_client_secret)
    local cert = parse("Endpoint=https://x;AuthType=azure.app;ClientId=c;TenantId=t;ClientCert=/etc/cert.pem")
    assert.equal("/etc/cert.pem", cert.client_cert)
    assert.equal("aad", parse("Endpoint=https://x;AuthType=aad").auth_type)
    assert.equal("aad", parse("Endpoint=https://x;AuthType=aad;ClientId=c").auth_type)
    assert.equal("aad", parse("Endpoint=https://x;AuthType=aad;ClientId=c;TenantId=t;ClientSecret=s").auth_type)
  end)

  it("never returns a secret", function()
    local info = assert(parse("Endpoint=https://x;AuthType=azure.app;ClientId=c;TenantId=t;ClientSecret=" ..
      SECRET .. ";AccessKey=" .. KEY))
    for _, v in pairs(info) do assert_no_secret(tostring(v)) end
  end)

  it("accepts versions that look like 1.x", function()
    for _, v in ipairs { "1.0", "1.1", "1.0-preview", "1.10.beta_2" } do
      assert.equal(v, parse("Endpoint=https://x;AccessKey=k;Version=" .. v).version)
    end
  end)

  describe("refuses", function()
    it("a duplicate key, naming the key", function()
      assert_error("Endpoint=https://x;AccessKey=" .. KEY .. ";accesskey=" .. KEY, "[Dd]uplicate.*AccessKey")
      assert_error("Endpoint=https://x;endpoint=https://y;AccessKey=" .. KEY, "[Dd]uplicate.*Endpoint")
    end)

    it("a missing or empty endpoint", function()
      assert_error("AccessKey=" .. KEY, "missing required property Endpoint")
      assert_error("Endpoint=;AccessKey=" .. KEY, "missing required property Endpoint")
      assert_error("", "Endpoint")
    end)

    it("a missing or empty access key", function()
      assert_error("Endpoint=https://x", "AccessKey")
      assert_error("Endpoint=https://x;AccessKey=", "AccessKey")
      assert_error("Endpoint=https://x;AccessKey=   ", "AccessKey")
    end)

    it("a bad port", function()
      for _, p in ipairs { "0", "65536", "-1", "80a", "", "1e3", "99999999999" } do
        assert_error("Endpoint=https://x;AccessKey=" .. KEY .. ";Port=" .. p, "Port")
      end
    end)

    it("bad and non-http URLs, without echoing them", function()
      local bad = { "ftp://x", "x.service.signalr.net", "https://", "https://x:99999", "https://u:" .. KEY .. "@x",
        "https://x?" .. KEY, "//x", "https://x y", "https:/x", "https://[::1", KEY }
      for _, url in ipairs(bad) do
        assert_error("Endpoint=" .. url .. ";AccessKey=" .. KEY, "Endpoint")
        assert_error("Endpoint=https://x;AccessKey=" .. KEY .. ";ClientEndpoint=" .. url, "ClientEndpoint")
        assert_error("Endpoint=https://x;AccessKey=" .. KEY .. ";ServerEndpoint=" .. url, "ServerEndpoint")
      end
    end)

    it("an unsupported version", function()
      for _, v in ipairs { "2.0", "1", "1.", "1.x", "v1.0", "1.0 beta", "" } do
        assert_error("Endpoint=https://x;AccessKey=" .. KEY .. ";Version=" .. v, "Version")
      end
    end)

    it("an unknown AuthType", function()
      assert_error("Endpoint=https://x;AccessKey=" .. KEY .. ";AuthType=azure.foo", "AuthType")
    end)

    it("azure.app without what it needs", function()
      assert_error("Endpoint=https://x;AuthType=azure.app", "ClientId")
      assert_error("Endpoint=https://x;AuthType=azure.app;ClientId=c", "TenantId")
      assert_error("Endpoint=https://x;AuthType=azure.app;ClientId=c;TenantId=t", "ClientSecret or ClientCert")
      assert_error("Endpoint=https://x;AuthType=aad;ClientId=c;TenantId=t", "ClientSecret or ClientCert")
    end)

    it("garbage, and never leaks the key from it", function()
      math.randomseed(7)
      local alphabet = "abcxyz=;:/.?@ \t" .. KEY
      for _ = 1, 500 do
        local parts = {}
        for _ = 1, math.random(1, 12) do
          local i = math.random(1, #alphabet)
          parts[#parts + 1] = alphabet:sub(i, i + math.random(0, 8))
        end
        local s = table.concat(parts) .. ";AccessKey=" .. KEY .. ";ClientSecret=" .. SECRET
        local info, err = parse(s)
        if info then
          for _, v in pairs(info) do assert_no_secret(tostring(v)) end
        else
          assert.equal("invalid_argument", err.kind)
          assert_no_secret(tostring(err))
        end
      end
    end)

    it("a value that is not a string, by raising", function()
      local ok, msg = pcall(signalr.parse_connection_string, nil)
      assert.is_false(ok)
      assert.matches("bad argument #1 to '.*' %(connection string must be a string, got nil%)", msg)
      assert.has_error(function() parse(42) end)
      assert.has_error(function() signalr.new { connection_string = 42 } end)
    end)
  end)
end)
