#!/bin/sh
# The tests need Check (libcheck) and pkg-config. Where they are missing, install them on
# Debian or Ubuntu (through sudo when not root), and say so; elsewhere say what to install.
if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists check; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
    sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "The tests need Check and pkg-config: installing them ($sudo apt-get install check pkg-config)"
    if $sudo apt-get update -qq && $sudo apt-get install -y -qq check pkg-config >/dev/null; then
        exit 0
    fi
    echo "Installing failed. Install them yourself: $sudo apt-get install check pkg-config" >&2
    exit 1
fi
echo "The tests need Check and pkg-config. Install them with your package manager, for example:" >&2
echo "    brew install check pkg-config       (macOS)" >&2
echo "    sudo dnf install check-devel pkgconf (Fedora)" >&2
exit 1
