#!/usr/bin/env bash
# tests/need-packages.sh on each system it knows, with stand-ins for their package managers
# that only say how they were called: it must name the packages as each system does.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
expect() {
    manager=$1 expected=$2
    mkdir -p "$work/$manager"
    printf '#!/bin/sh\necho "%s $*"\n' "$manager" > "$work/$manager/$manager"
    chmod +x "$work/$manager/$manager"
    for tool in sh id; do
        ln -sf "$(command -v $tool)" "$work/$manager/$tool"
    done
    got=$(PATH="$work/$manager" sh tests/need-packages.sh "The tests need" false check pkg-config |
        tail -n 1)
    if [ "$got" != "$expected" ]; then
        echo "need-packages.sh with $manager ran \"$got\", not \"$expected\"" >&2
        exit 1
    fi
}
# Run as root here, so without sudo.
expect dnf "dnf install -y check-devel pkgconf-pkg-config"
expect pacman "pacman -S --needed --noconfirm check pkgconf"
expect zypper "zypper --non-interactive install check-devel pkg-config"
expect apk "apk add check-dev pkgconf"
expect brew "brew install check pkg-config"
echo "need-packages.sh names Check and pkg-config as dnf, pacman, zypper, apk and brew do"
