#!/bin/sh
# usage: need-packages.sh WHO_NEEDS TEST PACKAGE...
#
# WHO_NEEDS (say, "The tests need") the Debian packages PACKAGE...; the shell command TEST
# succeeds when they are there. Where it fails, install them on Debian or Ubuntu (through sudo when not
# root) and say so; elsewhere say what to install.
who_needs=$1
test=$2
shift 2
if sh -c "$test" >/dev/null 2>&1; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
    sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "$who_needs $*: installing ($sudo apt-get install $*)"
    if $sudo apt-get update -qq && $sudo apt-get install -y -qq "$@" >/dev/null; then
        exit 0
    fi
    echo "Installing failed. Install them yourself: $sudo apt-get install $*" >&2
    exit 1
fi
echo "$who_needs $* (as Debian names them). Install them with your package manager." >&2
exit 1
