#!/bin/sh
# Gradescope runs this once, as root on its Ubuntu image, when it builds the autograder: it
# installs what the suite needs and builds the test runners, so that each submission is only
# compiled and graded (run_autograder). The suite needs Check 0.13 or newer: Ubuntu 22.04 on.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends build-essential check pkg-config python3
if ! pkg-config --atleast-version=0.13 check; then
    echo "setup.sh: the suite needs Check 0.13 or newer; this image has" \
        "$(pkg-config --modversion check 2>/dev/null || echo none): choose Ubuntu 22.04 or newer" >&2
    exit 1
fi
cd "${AUTOGRADER_ROOT:-/autograder}/source"
make all tests
