# loch: one plain Makefile. `make`, `make test`, `make SANITIZE=1 test`, `make fuzz`, `make bench`, `make demo`.
CC      ?= cc
SANITIZE ?=
PKGS    := libpq sqlite3 jansson yaml-0.1 libmicrohttpd libcurl openssl zlib avro-c libmariadb
DUCK    := third_party/duckdb
NA      := third_party/nanoarrow
ifeq ($(SANITIZE),1)
BUILD   := build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD   := build
SANFLAGS :=
endif
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wstrict-prototypes -Wno-unused-parameter \
           -Isrc -isystem $(DUCK)/include $(NA_INC) $(SANFLAGS) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := -L$(abspath $(DUCK)/lib) -Wl,-rpath,$(abspath $(DUCK)/lib) -lduckdb \
           $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
LDFLAGS += $(SANFLAGS)

# nanoarrow's C library + the flatcc runtime (Arrow IPC), fetched by scripts/setup into
# third_party/nanoarrow. Not our code: built with their own relaxed flags (no -Werror),
# still with $(SANFLAGS) so sanitizer builds link.
NA_INC  := -isystem $(NA)/config -isystem $(NA)/src -isystem $(NA)/flatcc/include
NA_SRC  := $(addprefix $(NA)/src/nanoarrow/common/,array.c schema.c utils.c array_stream.c) \
           $(addprefix $(NA)/src/nanoarrow/ipc/,codecs.c encoder.c writer.c decoder.c reader.c) \
           $(addprefix $(NA)/flatcc/src/runtime/,builder.c emitter.c refmap.c verifier.c)
NA_OBJ  := $(NA_SRC:%.c=$(BUILD)/na/%.o)
NA_LIB  := $(BUILD)/libnanoarrow.a

SRC     := $(shell find src -name '*.c' | sort)
LIB_SRC := $(filter-out src/loch.c,$(SRC))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
REPLAY_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/replay/%)

.PHONY: all setup test unit integration bench demo fuzz clean format layers
all: $(BUILD)/loch

setup:
	@./scripts/setup

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/na/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -fPIC -w $(NA_INC) $(SANFLAGS) -c -o $@ $<

$(NA_LIB): $(NA_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libloch.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/loch: $(BUILD)/obj/src/loch.o $(BUILD)/libloch.a $(NA_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libloch.a $(NA_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libloch.a $(NA_LIB) $(LDLIBS) -lcmocka

# The house's shape: allowed include edges between rooms, no source file over the limit.
layers:
	@./scripts/layers

# Each fuzz target's entry point with a plain driver: replays its saved crash inputs and seeds.
$(BUILD)/replay/%: tests/fuzz/%.c tests/fuzz/replay.c $(BUILD)/libloch.a $(NA_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< tests/fuzz/replay.c $(BUILD)/libloch.a $(NA_LIB) $(LDLIBS)

unit: setup $(BUILD)/loch $(UNIT_BIN) $(REPLAY_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done
	@set -e; for t in $(REPLAY_BIN); do n=$$(basename $$t); echo "== $$t"; \
	  $$t tests/fuzz/corpus/$$n tests/fuzz/seeds/$$n; done

integration: setup $(BUILD)/loch
	LOCH_BIN=$(abspath $(BUILD)/loch) .venv/bin/python -m pytest -q tests/integration

test: setup layers
	@$(MAKE) --no-print-directory -j$(shell nproc) $(BUILD)/loch $(UNIT_BIN) $(REPLAY_BIN)
	@$(MAKE) --no-print-directory unit integration

bench: setup $(BUILD)/loch
	./bench/run

demo: setup $(BUILD)/loch
	./scripts/demo

# libFuzzer targets (clang): build/fuzz/<name>; run one with build/fuzz/<name> -max_total_time=60
fuzz: setup
	@mkdir -p build/fuzz
	@set -e; for f in $(FUZZ_SRC); do n=$$(basename $$f .c); echo "== $$n"; \
	  clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Isrc -isystem $(DUCK)/include \
	    $(NA_INC) $(shell pkg-config --cflags $(PKGS)) $$f $(LIB_SRC) $(NA_SRC) -o build/fuzz/$$n $(LDLIBS); done

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
