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
#   make check-real       every stage's real build graded through SERVER=, at 5-second timings
#   make check-students   the student servers of tests/students/, graded as their `expect` says
#   make check-grade      make grade and the Gradescope autograder, on real runs
#   make check-listings   the lessons' listings: each does what its lesson says
#   make check-docs       the lessons' commands, run, and their quoted outputs, compared
#   make grade            JUnit XML, results.json and a summary under build/grade/
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
SERVER_THREADS = 4
SERVER_REQUESTS = 4
# The number a stage's main.c defines as $(1) (THREAD_COUNT...), for stage $(2) (step07); empty
# where it defines none. The stages' numbers live in the stages alone.
stage_constant = $(shell sed -n 's/^\#define $(1) \([0-9][0-9]*\)$$/\1/p' $(call stage_dir,$(2))/main.c)
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
# The runners side by side, each one's output shown whole when it ends: GNU make 4.0 and
# later do that (--output-sync). macOS's /usr/bin/make is GNU make 3.81, which cannot: there
# each runner's output waits in a file (WHOLE_OUTPUT) and is shown when the runner ends.
OUTPUT_SYNC := $(if $(filter output-sync,$(.FEATURES)),--output-sync=target,WHOLE_OUTPUT=yes)
ifeq ($(SANITIZE),)
BUILD := build
else
BUILD := build/sanitize-$(subst $(comma),-,$(SANITIZE))
SANITIZE_FLAGS := -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
endif
# A sanitizer's first report stops the program, so that a test sees it fail.
# The runner learns the stage's pool size and default REQUESTS too, from the stage's own
# THREAD_COUNT and DEFAULT_REQUESTS; a server of your own is taken to have the lessons' 4 and 4,
# unless SERVER_THREADS and SERVER_REQUESTS say otherwise. $(1) is the stage: step07.
test_env = ASAN_OPTIONS=abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
           TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
           SLEEP_SECONDS=$(if $(SERVER),$(SERVER_SLEEP_SECONDS),$(TEST_SLEEP_SECONDS)) \
           HEAD_TIMEOUT_SECONDS=$(if $(SERVER),$(SERVER_HEAD_TIMEOUT_SECONDS),$(TEST_HEAD_TIMEOUT_SECONDS)) \
           THREADS=$(if $(SERVER),$(SERVER_THREADS),$(call stage_constant,THREAD_COUNT,$(1))) \
           REQUESTS=$(if $(SERVER),$(SERVER_REQUESTS),$(call stage_constant,DEFAULT_REQUESTS,$(1)))

# pool_header.c only checks a pool.h (link_runner), and is never linked.
TEST_SOURCES := $(filter-out tests/pool_header.c,$(wildcard tests/*.c))
TEST_OBJECTS := $(TEST_SOURCES:tests/%.c=$(BUILD)/tests/%.o)

.PHONY: all clean tests check grade $(addprefix grade-,$(STAGES)) check-grade check-listings check-docs check-students check-real $(addprefix real-,$(STAGES)) check-lessons check-valgrind check-repeat check-clients bench need-check need-wrk $(STAGES) $(addprefix check-,$(STAGES)) \
        $(addprefix diff-,$(call stage_number,$(STAGES))) \
        $(addprefix lessons-,$(call stage_number,$(STAGES)))
.DELETE_ON_ERROR:
.SECONDEXPANSION:

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
$(BUILD)/tests/check-$(1): $(TEST_OBJECTS) $(wildcard $(2)/pool.c $(2)/pool.h) tests/count_alloc.h
	$$(call link_runner,$(2))
endef
$(foreach stage,$(STAGES),$(eval $(call stage_rules,$(stage),$(call stage_dir,$(stage)))))

# Links a runner with the pool of the folder $(1), if it has one, after checking that its
# pool.h declares what the tests call (tests/pool_header.c); the pool's allocations are
# counted (tests/count_alloc.h), so that the tests see what its drop leaves behind.
define link_runner
	$(if $(wildcard $(1)/pool.h),$(CC) $(TEST_FLAGS) -I$(1) -Itests -fsyntax-only \
	    tests/pool_header.c || { echo "$(1)/pool.h must declare the pool's functions as \
	    the lesson's pool.h does" >&2; exit 1; })
	$(CC) $(STAGE_FLAGS) $(SANITIZE_FLAGS) $(CFLAGS) -o $@ $(TEST_OBJECTS) \
	    $(if $(wildcard $(1)/pool.c),-include tests/count_alloc.h $(1)/pool.c) $(CHECK_LIBS) \
	    $(LDFLAGS)
endef

# A grader's own pool: POOL=dir holds its pool.c and pool.h, and the runners for it are built
# apart, one folder per pool.
ifneq ($(POOL),)
POOL_DIR := $(abspath $(POOL))
POOL_BUILD := $(BUILD)/tests/pool$(subst /,-,$(POOL_DIR))
$(POOL_BUILD)/check-%: $(TEST_OBJECTS) $(POOL_DIR)/pool.c $(POOL_DIR)/pool.h tests/count_alloc.h \
    | need-check
	@mkdir -p $(@D)
	$(call link_runner,$(POOL_DIR))
endif
# A SERVER= that names one of the builds made here (build/step05, build/tests/step07) is built
# first, so that the commands of the README work on a fresh clone.
BUILT_SERVER = $(filter $(addprefix $(BUILD)/,$(STAGES)) $(addprefix $(BUILD)/tests/,$(STAGES)),\
                        $(patsubst ./%,%,$(SERVER)))

# The runner a check uses, and how: with a grader's pool, or, for a grader's server without
# one, leaving out the tests of the pool's API, which would test the repository's pool.
runner = $(if $(POOL),$(POOL_BUILD),$(BUILD)/tests)/check-$(1)
RUNNER_FLAGS = $(if $(SERVER),$(if $(POOL),,--no-pool))

$(STAGES): %: $(BUILD)/%
	./$(BUILD)/$* $(PORT)

$(BUILD)/tests/%.o: tests/%.c $(wildcard tests/*.h) | need-check
	@mkdir -p $(@D)
	$(CC) $(TEST_FLAGS) $(SANITIZE_FLAGS) $(CHECK_CFLAGS) $(CFLAGS) -c -o $@ $<

need-check:
	@sh tests/need-packages.sh "The tests need" "pkg-config --exists check" check pkg-config

# make -s print-VAR prints the Makefile's VAR (TEST_SLEEP_SECONDS, STAGE_FLAGS...), so that
# scripts read its facts instead of writing them again.
print-%:
	@echo '$($*)'

# The stages' runners run side by side (most of their time is spent waiting on slow
# requests), each one's output shown whole when it ends; make -jN sets its own pace. A
# CK_RUN_CASE that names the tests of a few stages only is no error in the others. LOGS=dir
# writes each stage's TAP and XML logs to a file of its own there.
check:
ifneq ($(SERVER),)
	@echo "make check runs the tests of every stage against the repository's own stages. To" \
	    "test your server, name its stage: make check-stepNN SERVER=$(SERVER)" >&2; exit 2
endif
ifneq ($(CK_TAP_LOG_FILE_NAME)$(CK_XML_LOG_FILE_NAME),)
	@echo "make check runs one runner per stage, and each would write the same log file:" \
	    "give LOGS=dir instead, for a TAP and an XML log per stage" >&2; exit 2
endif
	@$(MAKE) --no-print-directory $(OUTPUT_SYNC) ALL_STAGES=yes \
	    $(if $(findstring jobserver,$(MAKEFLAGS)),,-j$(words $(STAGES))) \
	    $(addprefix check-,$(STAGES))

LOG_ENV = $(if $(LOGS),CK_TAP_LOG_FILE_NAME=$(LOGS)/$(1).tap CK_XML_LOG_FILE_NAME=$(LOGS)/$(1).xml)
$(addprefix check-,$(STAGES)): check-%: $(BUILD)/tests/% $$(call runner,$$*) $(BUILT_SERVER)
	$(if $(LOGS),@mkdir -p $(LOGS))
	$(call test_env,$*) $(call LOG_ENV,$*) $(call runner,$*) $(RUNNER_FLAGS) \
	    $(if $(ALL_STAGES),--allow-none) $(call stage_number,$*) $(or $(SERVER),$(BUILD)/tests/$*) \
	    $(if $(WHOLE_OUTPUT),> $(BUILD)/tests/$*.out 2>&1; \
	    status=$$?; cat $(BUILD)/tests/$*.out; rm -f $(BUILD)/tests/$*.out; exit $$status)

# make grade: the suite's verdict in the formats grading platforms read, written under
# GRADE_DIR by tests/grade.py from each runner's Check XML and its list of the tests it left
# out and the causes its failures share (stepNN.report.json): JUnit XML (junit.xml), Gradescope's
# results.json, and a summary of points per lesson (summary.txt). SERVER=path STAGE=NN grades
# a grader's server, POOL=dir its pool as well; with neither, the repository's own stages are
# graded. A pool that does not build is graded as failing its pool tests, with the compiler's
# words; SERVER_BUILD_LOG=file (with SERVER_BUILD_STATUS, its exit status) does the same for a
# server that did not build. The files are written whatever the server does.
GRADE_DIR = $(BUILD)/grade
GRADE_STAGES = $(if $(SERVER),$(STAGE),$(call stage_number,$(STAGES)))
grade: $(BUILD)/tests/check-step01
ifneq ($(SERVER),)
ifeq ($(filter $(STAGE),$(call stage_number,$(STAGES))),)
	@echo "make grade SERVER=... needs STAGE=NN, the stage the server is for (01 to 08)" >&2; exit 2
endif
endif
	@rm -rf $(GRADE_DIR) && mkdir -p $(GRADE_DIR)
	@$(BUILD)/tests/check-step01 --list > $(GRADE_DIR)/table.json
	$(if $(SERVER_BUILD_LOG),@cp $(SERVER_BUILD_LOG) $(GRADE_DIR)/server-build.log && \
	    echo $(or $(SERVER_BUILD_STATUS),1) > $(GRADE_DIR)/server-build.status)
	@$(MAKE) --no-print-directory $(OUTPUT_SYNC) -j$(words $(GRADE_STAGES)) \
	    $(addprefix grade-step,$(GRADE_STAGES))
	python3 tests/grade.py $(GRADE_DIR) $(addprefix step,$(GRADE_STAGES))

# One stage's run for make grade: its runner's log, exit status and options go to GRADE_DIR.
# A grader's pool that does not build leaves the compiler's words in pool-build.log, and the
# run goes on without it.
$(addprefix grade-,$(STAGES)): grade-%: $(BUILD)/tests/check-% $(if $(SERVER),$(BUILT_SERVER),$(BUILD)/tests/%)
	@runner=$(BUILD)/tests/check-$*; flags="$(RUNNER_FLAGS)"; \
	if [ -n "$(POOL)" ]; then \
	    if [ ! -f $(POOL_DIR)/pool.c ] || [ ! -f $(POOL_DIR)/pool.h ]; then \
	        echo "POOL=$(POOL): there is no pool.c and pool.h in that folder" \
	            > $(GRADE_DIR)/pool-build.log; \
	        echo 1 > $(GRADE_DIR)/pool-build.status; flags=--no-pool; \
	    elif $(MAKE) -s --no-print-directory $(call runner,$*) > $(GRADE_DIR)/pool-build.log 2>&1; \
	    then runner=$(call runner,$*); \
	    else echo 1 > $(GRADE_DIR)/pool-build.status; flags=--no-pool; fi; \
	fi; \
	echo "$$flags" > $(GRADE_DIR)/$*.flags; \
	$(call test_env,$*) CK_XML_LOG_FILE_NAME=$(GRADE_DIR)/$*.xml CK_TAP_LOG_FILE_NAME=$(GRADE_DIR)/$*.tap \
	    $$runner $$flags --report $(GRADE_DIR)/$*.report.json \
	    $(call stage_number,$*) $(or $(SERVER),$(BUILD)/tests/$*) \
	    > $(GRADE_DIR)/$*.log 2>&1; \
	echo $$? > $(GRADE_DIR)/$*.status; \
	tail -n 1 $(GRADE_DIR)/$*.log

# Every stage's real build (5-second sleep and head timeout) graded as a student's server is:
# through SERVER=, at the stages' own timings, each stage's runner beside the others.
check-real: all tests
	@$(MAKE) --no-print-directory $(OUTPUT_SYNC) -j$(words $(STAGES)) \
	    $(addprefix real-,$(STAGES))

$(addprefix real-,$(STAGES)): real-%:
	@$(MAKE) --no-print-directory check-$* SERVER=$(BUILD)/$* \
	    SERVER_THREADS=$(or $(call stage_constant,THREAD_COUNT,$*),4) \
	    SERVER_REQUESTS=$(or $(call stage_constant,DEFAULT_REQUESTS,$*),4)

# make grade and the Gradescope autograder, tested on real runs with a real JUnit reader
# (Debian's python3-junitparser, which Debian's own python3 sees).
check-grade: all tests
	/usr/bin/python3 tests/check_grade.py

# The suite tried as a grader uses it: every server of tests/students/, written as students
# write them, must be graded as its file `expect` says (the correct ones pass, each mistaken
# one fails naming its mistake, each in bounded time).
check-students: all tests
	python3 tests/students.py

# The lessons tested like code: their listings (make check-listings) and their commands and
# quoted outputs (make check-docs).
check-listings: all tests
	python3 tests/listings.py

check-docs: all tests
	@sh tests/need-packages.sh "make check-docs needs" \
	    "command -v curl && command -v ss && command -v valgrind && command -v lsof && nc -h 2>&1 | grep -q OpenBSD" \
	    curl netcat-openbsd iproute2 valgrind lsof
	python3 tests/docs.py $(DOCS)

# Stage 08 under valgrind's memcheck. The tests of these lessons run the server through a
# wrapper that starts it under valgrind; from stage 08 on, every test stops its server with
# SIGTERM and asserts exit status 0, which a memory error or a leak changes. (The pool lesson's
# server tests stay out: one of them allows the server 16 open files, too few for valgrind.)
# The pool's own tests run inside the runner, itself under valgrind.
VALGRIND = valgrind --quiet --error-exitcode=99 --leak-check=full \
           --errors-for-leak-kinds=definite,indirect,possible
# SERVER=path and POOL=dir put a grader's stage 08 server and pool under valgrind instead (with
# SERVER= and no POOL=, the pool's own tests are not run).
VALGRIND_SERVER_CASES = robust hostile html route sleep shutdown
VALGRIND_POOL_CASES = $(if $(SERVER),$(if $(POOL),pool_api drop_api),pool_api drop_api)
VALGRIND_TARGET = $(or $(SERVER),$(BUILD)/tests/step08)
check-valgrind: $(if $(SERVER),$(BUILT_SERVER),$(BUILD)/tests/step08) $(call runner,step08)
	printf '#!/bin/sh\nexec %s %s "$$@"\n' '$(VALGRIND)' '$(abspath $(VALGRIND_TARGET))' \
	    > $(BUILD)/tests/step08-valgrind
	chmod +x $(BUILD)/tests/step08-valgrind
	for case in $(VALGRIND_SERVER_CASES); do \
	    CK_RUN_CASE=$$case CK_TIMEOUT_MULTIPLIER=3 $(call test_env,step08) $(call runner,step08) 08 \
	        $(BUILD)/tests/step08-valgrind || exit 1; \
	done
	for case in $(VALGRIND_POOL_CASES); do \
	    CK_FORK=no CK_RUN_CASE=$$case $(call test_env,step08) $(VALGRIND) $(call runner,step08) 08 \
	        $(VALGRIND_TARGET) || exit 1; \
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
	$$(call test_env,$(2)) $(BUILD)/tests/check-$(2) --new $(call stage_number,$(1)) $(BUILD)/tests/$(2)
endef
$(foreach i,$(wordlist 2,$(words $(STAGES)),1 2 3 4 5 6 7 8 9),\
    $(eval $(call pair_rules,$(word $(i),$(STAGES)),$(word $(i),x $(STAGES)))))
