#!/usr/bin/env bash
# bench/rest.sh: REST sends per second against a local nginx answering 202 on loopback
# (plain HTTP, keep-alive), side by side in one run: the SDK (Lua 5.4, LuaJIT), a raw
# libcurl loop (easy; multi with the same concurrency) and wrk.
# Usage: bash bench/rest.sh [seconds-per-measurement]   (bench/run calls it)
# Needs: nginx, wrk (Debian packages), cc, libcurl headers, lua-cqueues.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-${BENCH_SECONDS:-1}}
rounds=${REST_BENCH_ROUNDS:-5}
mkdir -p build/bench

for tool in nginx wrk; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "bench/rest.sh: $tool is not installed (apt-get install $tool)"; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cc -O2 -o build/bench/rest_curl bench/rest_curl.c $(pkg-config --cflags --libs libcurl)
make -s --no-print-directory LUA=lua5.4 build >/dev/null
make -s --no-print-directory LUA=luajit build >/dev/null

# nginx: one worker pinned to the last CPU, every client pinned to the first, so the two
# sides never fight for a core (and the machine's other load disturbs all peers alike);
# no logs, keep-alive without limits.
ncpu=$(nproc)
server_cpu=$((ncpu - 1))
client_cpu=0
pin() { if [ "$ncpu" -gt 1 ] && command -v taskset >/dev/null; then taskset -c "$client_cpu" "$@"; else "$@"; fi; }
affinity=$(python3 -c "import sys; n=int(sys.argv[1]); print('1' + '0' * n if n > 0 else '1')" "$server_cpu")
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$dir/logs"
cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
worker_cpu_affinity $affinity;
daemon on;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  server {
    listen 127.0.0.1:$port;
    location / { return 202; }
  }
}
EOF
"$NGINX" -p "$dir" -c "$dir/nginx.conf"
cleanup() {
  if [ -f "$dir/nginx.pid" ]; then kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
endpoint="http://127.0.0.1:$port"
url="$endpoint/api/hubs/bench/:send?api-version=2022-06-01"
for _ in $(seq 50); do curl -s -o /dev/null -X POST "$url" && break; sleep 0.1; done

cat >"$dir/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"target":"newMessage","arguments":["alice","hello"]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. string.rep("x", 300)
EOF

best() { if [ -z "$1" ] || awk -v a="$2" -v b="$1" 'BEGIN { exit !(a > b) }'; then echo "$2"; else echo "$1"; fi; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
rate() { printf "%10s sends/s" "$(printf "%'d" "$1" 2>/dev/null || echo "$1")"; }
# make sets the module paths; the pin (CPU affinity) passes on to the interpreter it runs
sdk() { pin make -s --no-print-directory bench-lua LUA="$1" BENCH_SCRIPT=bench/rest.lua BENCH_ARGS="$endpoint $secs ${2:-}"; }
wrk_rate() {
  pin wrk -t1 -c"$1" -d"${secs}s" -s "$dir/post.lua" "$url" | awk '/^Requests\/sec:/ { printf "%.0f\n", $2 }'
}

echo "== REST sends (POST :send, nginx 202 on loopback, HTTP keep-alive) =="
echo "   ${rounds} alternating rounds of ${secs}s each, best round shown (the machine may be shared);"
echo "   nginx pinned to CPU ${server_cpu}, clients to CPU ${client_cpu}"
for n in 1 8 64; do
  raw=; lua54=; jit=; w=
  for _ in $(seq "$rounds"); do
    if [ "$n" = 1 ]; then
      raw=$(best "$raw" "$(pin build/bench/rest_curl easy "$url" "$secs")")
      lua54=$(best "$lua54" "$(sdk lua5.4)")
      jit=$(best "$jit" "$(sdk luajit)")
    else
      raw=$(best "$raw" "$(pin build/bench/rest_curl multi "$url" "$secs" "$n")")
      lua54=$(best "$lua54" "$(sdk lua5.4 "$n")")
      jit=$(best "$jit" "$(sdk luajit "$n")")
    fi
    w=$(best "$w" "$(wrk_rate "$n")")
  done
  if [ "$n" = 1 ]; then
    echo "  sequential (1 in flight)"
    peer="raw libcurl easy"
  else
    echo "  concurrent ($n in flight)"
    peer="raw libcurl multi"
  fi
  printf "    %-30s %s\n" "$peer" "$(rate "$raw")"
  printf "    %-30s %s   %sx %s\n" "signalr, Lua 5.4" "$(rate "$lua54")" "$(ratio "$lua54" "$raw")" "$peer"
  printf "    %-30s %s   %sx %s\n" "signalr, LuaJIT" "$(rate "$jit")" "$(ratio "$jit" "$raw")" "$peer"
  printf "    %-30s %s\n" "wrk -c$n (C, epoll)" "$(rate "$w")"
done
