-- luacheck configuration (Debian lua-check).
std = "max"
max_line_length = 120
codes = true
exclude_files = { "build/**", "spec/interop/node_modules/**", ".state/**" }

files["spec/**"] = { std = "+busted" }
files["lua/signalr/emulator/**"] = { std = "lua54" }
files["bin/signalr-emulator"] = { std = "lua54" }
files["lua/signalr/resty/**"] = { globals = { "ngx" } }
files["examples/openresty/**"] = { globals = { "ngx" } }
files["spec/resty/app.lua"] = { globals = { "ngx" } }
