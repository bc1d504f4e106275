# azure-signalr: build, test, bench, demo.  LUA=lua5.4 (default) or LUA=luajit.
LUA ?= lua5.4
ifeq ($(LUA),luajit)
  LUA_PC ?= luajit
else
  LUA_PC ?= $(LUA)
endif

CC ?= cc
LUA_CFLAGS := $(shell pkg-config --cflags $(LUA_PC))
DEP_CFLAGS := $(shell pkg-config --cflags libcurl openssl libcjson 2>/dev/null)
DEP_LIBS := $(shell pkg-config --libs libcurl openssl libcjson 2>/dev/null || echo -lcurl -lssl -lcrypto -lcjson)
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-missing-field-initializers
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden $(WARN) $(CFLAGS) $(LUA_CFLAGS) $(DEP_CFLAGS)

CORE_SRC := $(filter-out csrc/l_%.c,$(wildcard csrc/*.c))
BIND_SRC := $(wildcard csrc/l_*.c)
HEADERS := $(wildcard csrc/*.h)

BUILD ?= build/$(LUA)
MODULE := $(BUILD)/signalr/core.so
OBJS := $(patsubst csrc/%.c,$(BUILD)/obj/%.o,$(CORE_SRC) $(BIND_SRC))

# busted runs inside the chosen interpreter (its script is plain Lua), so the module
# search paths below are that interpreter's.
BUSTED = $(LUA) $(shell command -v busted)
# Specs find the module and the Lua sources through these.
export LUA_PATH := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/?.lua;$(shell env -u LUA_PATH -u LUA_CPATH $(LUA) -e 'print(package.path)' 2>/dev/null)
export LUA_CPATH := $(CURDIR)/$(BUILD)/?.so;$(shell env -u LUA_PATH -u LUA_CPATH $(LUA) -e 'print(package.cpath)' 2>/dev/null)
# Lua 5.4 reads these first: its children (the emulator, always Lua 5.4) keep 5.4 paths
# even when the specs run under LuaJIT.
export LUA_PATH_5_4 := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/?.lua;$(shell env -u LUA_PATH_5_4 -u LUA_PATH lua5.4 -e 'print(package.path)' 2>/dev/null)
export LUA_CPATH_5_4 := $(CURDIR)/build/lua5.4/?.so;$(shell env -u LUA_CPATH_5_4 -u LUA_CPATH lua5.4 -e 'print(package.cpath)' 2>/dev/null)

.PHONY: all build test test-c test-emulator run-emulator-specs lint check asan valgrind bench bench-lua demo clean install spec-run asan-build asan-run

all build: $(MODULE)

$(BUILD)/obj/%.o: csrc/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(MODULE): $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared $(CFLAGS) $(LDFLAGS) -o $@ $(OBJS) $(DEP_LIBS)

# C-level tests of the core (no Lua).
$(BUILD)/test_core: test/c/test_core.c $(filter-out $(BUILD)/obj/l_%.o,$(OBJS))
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(DEP_CFLAGS) -Icsrc -o $@ $^ $(DEP_LIBS) -lm

test-c: $(BUILD)/test_core
	$(BUILD)/test_core

# SDK specs (both Lua versions); the emulator's own specs run on Lua 5.4 only.
SDK_SPECS = $(wildcard spec/*_spec.lua)
test: $(MODULE)
	$(BUSTED) $(SDK_SPECS)

test-emulator:
	$(MAKE) LUA=lua5.4 run-emulator-specs

run-emulator-specs:
	$(BUSTED) spec/emulator

# luacheck runs on its own interpreter: keep this build's module paths away from it.
lint:
	env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 luacheck -q lua bin spec bench examples

# Everything CI runs; ends with one line "N passed, N failed".
check:
	bash scripts/check

# busted over SPECS with this build's module (scripts/check adds -o TAP).
spec-run: $(MODULE)
	$(BUSTED) $(SPECS) $(BUSTED_ARGS)

ASAN_BUILD = build/asan-$(LUA)
asan-build:
	$(MAKE) BUILD=$(ASAN_BUILD) CFLAGS="-O1 -g $(SANITIZE)" build

SANITIZE = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ifeq ($(LUA),luajit)
  LUA_LIBS ?= $(shell pkg-config --libs luajit)
else
  LUA_LIBS ?= $(shell pkg-config --libs $(LUA_PC))
endif

# A small interpreter linked with the sanitizers: only the spec process is instrumented,
# never its children (python, node, the emulator, openssl).
$(ASAN_BUILD)/lua_host: test/lua_host.c
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(SANITIZE) $(LUA_CFLAGS) -o $@ $< $(LUA_LIBS) -lm

# SPECS under AddressSanitizer + UBSan (leaks included). Full unwinding: libcrypto has no
# frame pointers, and the suppressions (test/lsan.supp) match on frames inside it.
asan-run: asan-build $(ASAN_BUILD)/lua_host
ifeq ($(LUA),luajit)
	@echo "ASan runs on Lua 5.4 only: LuaJIT's allocator and unwinder deadlock under it" >&2; exit 1
endif
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0 LSAN_OPTIONS=suppressions=$(CURDIR)/test/lsan.supp \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LUA_CPATH="$(CURDIR)/$(ASAN_BUILD)/?.so;$$LUA_CPATH" LUA_CPATH_5_4="$(CURDIR)/$(ASAN_BUILD)/?.so;$$LUA_CPATH_5_4" \
	  $(ASAN_BUILD)/lua_host $(shell command -v busted) $(SPECS) $(BUSTED_ARGS)

# The SDK specs once more under AddressSanitizer + UBSan.
asan:
	$(MAKE) asan-run SPECS="$(SDK_SPECS)"

# The Lua specs and the C tests under valgrind (memcheck); any error fails.
valgrind: $(MODULE) $(BUILD)/test_core
	valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite $(BUILD)/test_core
	valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	  --suppressions=$(CURDIR)/test/valgrind.supp $(BUSTED) $(SDK_SPECS)

bench: $(MODULE)
	bash bench/run

# One Lua benchmark script with this build's module paths (used by bench/run).
bench-lua: $(MODULE)
	$(LUA) $(BENCH_SCRIPT) $(BENCH_ARGS)

demo: $(MODULE)
	$(LUA) examples/scripts/demo.lua

install:
	luarocks make --local azure-signalr-scm-1.rockspec

clean:
	rm -rf build
