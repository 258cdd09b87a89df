# The web server in eight stages: build, run, test and compare them. See README.md.
#
#   make                  build every stage into build/
#   make step05           build stage 05 and run it on port 7878 (PORT=8080 to change it)
#   make tests            build the test runners (make check builds them too)
#   make check            run the test suite against every stage
#   make check-step05     the tests of stage 05 only (SERVER=path tests another binary)
#   make check-lessons    prove that each stage's new tests fail on the stage before it
#   make check-valgrind   stage 08 and its pool under valgrind: no memory error, no leak
#   make check-repeat     the whole suite 20 times in a row (REPEAT=N): no flaky test
#   make check-clients    curl, python's http.client, ab and headless Chromium against 05-08
#   make diff-05          what stage 05 changes in stage 04
#   make bench            the benchmark: tables and a picture in build/bench/
#   make clean            remove build/
#
# SANITIZE=address,undefined or SANITIZE=thread builds (and tests) everything under that
# sanitizer, in a build folder of its own.

CFLAGS ?= -O2 -g
PORT ?= 7878

# What the code needs to build at all: kept apart from CFLAGS and LDFLAGS, which are yours.
STAGE_FLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wpedantic -pthread
TEST_FLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wpedantic -pthread
# The tests run builds of the stages with a short GET /sleep and head timeout, to stay quick;
# the runner learns both from the environment. A server of your own (SERVER=...) is taken to
# keep the stages' own timings, unless SERVER_SLEEP_SECONDS and SERVER_HEAD_TIMEOUT_SECONDS
# say otherwise.
TEST_SLEEP_SECONDS = 1
TEST_HEAD_TIMEOUT_SECONDS = 2
SERVER_SLEEP_SECONDS = 5
SERVER_HEAD_TIMEOUT_SECONDS = 5
TEST_BUILD_FLAGS = -DSLEEP_SECONDS=$(TEST_SLEEP_SECONDS) \
                   -DHEAD_TIMEOUT_SECONDS=$(TEST_HEAD_TIMEOUT_SECONDS)
# Asked for only when the tests are built, so that building the stages needs only a compiler.
CHECK_CFLAGS = $(shell pkg-config --cflags check)
CHECK_LIBS = $(shell pkg-config --libs check)

STAGE_DIRS := $(sort $(wildcard step[0-9][0-9]-*))
STAGES := $(foreach dir,$(STAGE_DIRS),$(firstword $(subst -, ,$(dir))))
stage_dir = $(filter $(1)-%,$(STAGE_DIRS))
stage_number = $(patsubst step%,%,$(1))

comma := ,
ifeq ($(SANITIZE),)
BUILD := build
else
BUILD := build/sanitize-$(subst $(comma),-,$(SANITIZE))
SANITIZE_FLAGS := -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
endif
# A sanitizer's first report stops the program, so that a test sees it fail.
TEST_ENV = ASAN_OPTIONS=abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
           TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
           SLEEP_SECONDS=$(if $(SERVER),$(SERVER_SLEEP_SECONDS),$(TEST_SLEEP_SECONDS)) \
           HEAD_TIMEOUT_SECONDS=$(if $(SERVER),$(SERVER_HEAD_TIMEOUT_SECONDS),$(TEST_HEAD_TIMEOUT_SECONDS))

TEST_SOURCES := $(wildcard tests/*.c)
TEST_OBJECTS := $(TEST_SOURCES:tests/%.c=$(BUILD)/tests/%.o)

.PHONY: all clean tests check check-lessons check-valgrind check-repeat check-clients bench need-check need-wrk $(STAGES) $(addprefix check-,$(STAGES)) \
        $(addprefix diff-,$(call stage_number,$(STAGES))) \
        $(addprefix lessons-,$(call stage_number,$(STAGES)))
.DELETE_ON_ERROR:

all: $(addprefix $(BUILD)/,$(STAGES))

clean:
	rm -rf build

tests: $(addprefix $(BUILD)/tests/check-,$(STAGES))

# build/stepNN from the stage's own sources, and nothing else; build/tests/stepNN the same,
# with the test timings.
define stage_rules
$(BUILD)/$(1): $(wildcard $(2)/*.c $(2)/*.h)
	@mkdir -p $$(@D)
	$$(CC) $$(STAGE_FLAGS) $$(SANITIZE_FLAGS) $$(CFLAGS) -o $$@ $$(filter %.c,$$^) $$(LDFLAGS)

$(BUILD)/tests/$(1): $(wildcard $(2)/*.c $(2)/*.h)
	@mkdir -p $$(@D)
	$$(CC) $$(STAGE_FLAGS) $$(TEST_BUILD_FLAGS) $$(SANITIZE_FLAGS) $$(CFLAGS) -o $$@ \
	    $$(filter %.c,$$^) $$(LDFLAGS)

# The test runner for the stage: the whole suite, with the stage's pool.c where it has one.
$(BUILD)/tests/check-$(1): $(TEST_OBJECTS) $(wildcard $(2)/pool.c $(2)/pool.h)
	$$(CC) $$(STAGE_FLAGS) $$(SANITIZE_FLAGS) $$(CFLAGS) -o $$@ $$(TEST_OBJECTS) \
	    $$(filter %.c,$$^) $$(CHECK_LIBS) $$(LDFLAGS)
endef
$(foreach stage,$(STAGES),$(eval $(call stage_rules,$(stage),$(call stage_dir,$(stage)))))

$(STAGES): %: $(BUILD)/%
	./$(BUILD)/$* $(PORT)

$(BUILD)/tests/%.o: tests/%.c $(wildcard tests/*.h) | need-check
	@mkdir -p $(@D)
	$(CC) $(TEST_FLAGS) $(SANITIZE_FLAGS) $(CHECK_CFLAGS) $(CFLAGS) -c -o $@ $<

need-check:
	@sh tests/need-packages.sh "The tests need" "pkg-config --exists check" check pkg-config

# The stages' runners run side by side (most of their time is spent waiting on slow
# requests), each one's output shown whole when it ends; make -jN sets its own pace.
check:
	@$(MAKE) --no-print-directory --output-sync=target \
	    $(if $(findstring jobserver,$(MAKEFLAGS)),,-j$(words $(STAGES))) \
	    $(addprefix check-,$(STAGES))

$(addprefix check-,$(STAGES)): check-%: $(BUILD)/tests/% $(BUILD)/tests/check-%
	$(TEST_ENV) $(BUILD)/tests/check-$* $(call stage_number,$*) $(or $(SERVER),$(BUILD)/tests/$*)

# Stage 08 under valgrind's memcheck. The tests of these lessons run the server through a
# wrapper that starts it under valgrind; from stage 08 on, every test stops its server with
# SIGTERM and asserts exit status 0, which a memory error or a leak changes. (The pool lesson's
# server tests stay out: one of them allows the server 16 open files, too few for valgrind.)
# The pool's own tests run inside the runner, itself under valgrind.
VALGRIND = valgrind --quiet --error-exitcode=99 --leak-check=full \
           --errors-for-leak-kinds=definite,indirect,possible
VALGRIND_SERVER_CASES = robust hostile html route sleep shutdown
VALGRIND_POOL_CASES = pool_api drop_api
check-valgrind: $(BUILD)/tests/step08 $(BUILD)/tests/check-step08
	printf '#!/bin/sh\nexec %s %s "$$@"\n' '$(VALGRIND)' '$(abspath $(BUILD)/tests/step08)' \
	    > $(BUILD)/tests/step08-valgrind
	chmod +x $(BUILD)/tests/step08-valgrind
	for case in $(VALGRIND_SERVER_CASES); do \
	    CK_RUN_CASE=$$case CK_TIMEOUT_MULTIPLIER=3 $(TEST_ENV) $(BUILD)/tests/check-step08 08 \
	        $(BUILD)/tests/step08-valgrind || exit 1; \
	done
	for case in $(VALGRIND_POOL_CASES); do \
	    CK_FORK=no CK_RUN_CASE=$$case $(TEST_ENV) $(VALGRIND) $(BUILD)/tests/check-step08 08 \
	        $(BUILD)/tests/step08 || exit 1; \
	done

# The whole suite, many times in a row: a test that fails even once in these runs is flaky.
REPEAT = 20
check-repeat:
	for run in $$(seq $(REPEAT)); do \
	    echo "== make check: run $$run of $(REPEAT)"; \
	    $(MAKE) -s --no-print-directory check || exit 1; \
	done

# The benchmark: the lessons in numbers and a picture (build/bench/), and the final stage
# against nginx where nginx is installed. It measures the plain build, never a sanitizer's.
ifeq ($(SANITIZE),)
bench: $(BUILD)/step05 $(BUILD)/step07 $(BUILD)/step08 | need-wrk
	python3 tests/bench.py $(BUILD)
else
bench:
	@echo "make bench measures the plain build: run it without SANITIZE" >&2; exit 1
endif

need-wrk:
	@sh tests/need-packages.sh "make bench needs" "command -v wrk" wrk

# Real clients against stages 05 to 08: curl, python's http.client, ApacheBench and headless
# Chromium (Debian packages curl, python3, apache2-utils, chromium). Not part of make check.
check-clients: $(addprefix $(BUILD)/,$(filter step05 step06 step07 step08,$(STAGES)))
	python3 tests/clients.py $(BUILD)

check-lessons: $(addprefix lessons-,$(call stage_number,$(wordlist 2,$(words $(STAGES)),$(STAGES))))

# diff-NN and lessons-NN compare stage NN, $(1), with the stage before it, $(2).
define pair_rules
diff-$(call stage_number,$(1)):
	@diff -ruN -x README.md -x '*.svg' $(call stage_dir,$(2)) $(call stage_dir,$(1)) || test $$$$? -eq 1

lessons-$(call stage_number,$(1)): $(BUILD)/tests/$(2) $(BUILD)/tests/check-$(2)
	$$(TEST_ENV) $(BUILD)/tests/check-$(2) --new $(call stage_number,$(1)) $(BUILD)/tests/$(2)
endef
$(foreach i,$(wordlist 2,$(words $(STAGES)),1 2 3 4 5 6 7 8 9),\
    $(eval $(call pair_rules,$(word $(i),$(STAGES)),$(word $(i),x $(STAGES)))))
