#!/usr/bin/env bash
# Debian 11 (glibc 2.31), as a fresh machine: a debootstrap of bullseye with only a C compiler,
# make and the C library's headers. make check must install the rest itself (Check and
# pkg-config, through tests/need-packages.sh) and pass.
set -euo pipefail
cd "$(dirname "$0")/.."

root=$(mktemp -d)
unmount() {
    for mounted in proc dev/pts dev; do
        umount -l "$root/$mounted" 2>/dev/null || true
    done
    rm -rf --one-file-system "$root"
}
trap unmount EXIT

# The Debian archive this machine's own apt uses.
mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
echo "-- a Debian 11 system with gcc, make and libc6-dev (debootstrap)"
debootstrap --variant=minbase --include=gcc,make,libc6-dev bullseye "$root" "$mirror" \
    >"$root.log" 2>&1 || { tail -20 "$root.log"; exit 1; }
rm -f "$root.log"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"

echo "-- the repository's files in it"
mkdir "$root/web-server"
git ls-files -z --cached --others --exclude-standard | xargs -0 tar -c | tar -x -C "$root/web-server"

echo "-- make check there"
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    sh -c 'ldd --version | head -1 && cd /web-server && make check'
