#!/bin/sh
# What the repository needs of a machine, on each system, in one place.
#
#   need-packages.sh --setup [GROUP...]
#       installs the packages of each GROUP (with none: student):
#         student  what the stages, the lessons and the whole test suite use
#         ci       all that, and what continuous integration adds
#       The README's setup, the dev container and .ci/run all call this.
#   need-packages.sh WHO_NEEDS TEST PACKAGE...
#       when the shell command TEST fails, says that WHO_NEEDS (say, "The tests need") the
#       PACKAGEs, and installs them; make calls this before a target that needs them.
#
# Packages are named as Debian names them, and installed with the system's own package
# manager under the system's own names: apt-get (Debian, Ubuntu, WSL), dnf (Fedora), pacman
# (Arch), zypper (openSUSE), apk (Alpine) or brew (macOS), through sudo when not root (brew
# never). Where none of these is found, or installing fails, it prints the exact command to
# run, and exits 1.

student="build-essential check pkg-config curl netcat-openbsd iproute2 valgrind lsof procps python3
python3-junitparser"
ci="$student clang clang-format patch apache2-utils chromium wrk nginx-light musl-tools
debootstrap cmake"

# The package manager of this system.
manager() {
    for m in apt-get dnf pacman zypper apk brew; do
        if command -v $m >/dev/null 2>&1; then
            echo $m
            return
        fi
    done
}

# The name that manager $1 gives to Debian's package $2; nothing where the system has no such
# package, or needs none (macOS has a C compiler, make and nc once Xcode's command-line tools
# are in, and no valgrind, ss or musl). The JUnit reader is for make check-grade, which reads
# with Debian's own python3.
system_name() {
    case "$1:$2" in
    apt-get:*) echo "$2" ;;
    *:python3-junitparser) ;;
    dnf:build-essential) echo "gcc make" ;;
    dnf:check) echo "check-devel" ;;
    dnf:pkg-config) echo "pkgconf-pkg-config" ;;
    dnf:netcat-openbsd) echo "netcat" ;;
    dnf:iproute2) echo "iproute" ;;
    dnf:procps) echo "procps-ng" ;;
    dnf:apache2-utils) echo "httpd-tools" ;;
    dnf:nginx-light) echo "nginx" ;;
    dnf:musl-tools) echo "musl-gcc" ;;
    dnf:npm) echo "nodejs-npm" ;;
    pacman:build-essential) echo "base-devel" ;;
    pacman:pkg-config) echo "pkgconf" ;;
    pacman:netcat-openbsd) echo "openbsd-netcat" ;;
    pacman:procps) echo "procps-ng" ;;
    pacman:python3) echo "python" ;;
    pacman:clang-format) echo "clang" ;;
    pacman:apache2-utils) echo "apache" ;;
    pacman:nginx-light) echo "nginx" ;;
    pacman:musl-tools) echo "musl" ;;
    zypper:build-essential) echo "gcc make" ;;
    zypper:check) echo "check-devel" ;;
    zypper:apache2-utils) echo "apache2-utils" ;;
    zypper:nginx-light) echo "nginx" ;;
    zypper:musl-tools) echo "musl" ;;
    zypper:npm) echo "npm-default" ;;
    apk:build-essential) echo "build-base" ;;
    apk:check) echo "check-dev" ;;
    apk:pkg-config) echo "pkgconf" ;;
    apk:clang-format) echo "clang-extra-tools" ;;
    apk:nginx-light) echo "nginx" ;;
    apk:musl-tools) ;;
    brew:build-essential | brew:netcat-openbsd | brew:iproute2 | brew:valgrind | brew:procps) ;;
    brew:lsof) ;;
    brew:musl-tools | brew:debootstrap | brew:python3-junitparser | brew:chromium) ;;
    brew:python3) echo "python" ;;
    brew:nginx-light) echo "nginx" ;;
    brew:apache2-utils | brew:npm) echo "node" ;;
    *) echo "$2" ;;
    esac
}

# The command that installs packages $2... with manager $1.
install_command() {
    m=$1
    shift
    sudo=
    [ "$m" = brew ] || [ "$(id -u)" -eq 0 ] || sudo="sudo "
    case $m in
    apt-get) echo "${sudo}apt-get install -y $*" ;;
    dnf) echo "${sudo}dnf install -y $*" ;;
    pacman) echo "${sudo}pacman -S --needed --noconfirm $*" ;;
    zypper) echo "${sudo}zypper --non-interactive install $*" ;;
    apk) echo "${sudo}apk add $*" ;;
    brew) echo "brew install $*" ;;
    esac
}

# Installs Debian's packages $1... under this system's names; says what to run when it cannot.
install() {
    m=$(manager)
    names=
    for package in "$@"; do
        names="$names $(system_name "$m" "$package")"
    done
    names=$(echo $names) # one space between names
    if [ -z "$m" ]; then
        echo "No package manager found (apt-get, dnf, pacman, zypper, apk, brew): install" \
            "these, as Debian names them, yourself: $*" >&2
        return 1
    fi
    if [ -z "$names" ]; then
        return 0
    fi
    command=$(install_command "$m" $names)
    echo "Installing: $command"
    if [ "$m" = apt-get ]; then
        sudo=
        [ "$(id -u)" -eq 0 ] || sudo=sudo
        $sudo apt-get update -qq || true
        DEBIAN_FRONTEND=noninteractive $command -qq >/dev/null && return 0
    elif $command; then
        return 0
    fi
    echo "Installing failed. Install them yourself: $command" >&2
    return 1
}

if [ "$1" = --setup ]; then
    shift
    packages=
    [ $# -gt 0 ] || set -- student
    for group; do
        case $group in
        student) packages="$packages $student" ;;
        ci) packages="$packages $ci" ;;
        *)
            echo "need-packages.sh: no group \"$group\" (student, ci)" >&2
            exit 2
            ;;
        esac
    done
    if [ "$(manager)" = brew ] && ! xcode-select -p >/dev/null 2>&1; then
        echo "macOS needs Xcode's command-line tools (a C compiler, make): xcode-select --install" >&2
        exit 1
    fi
    install $packages
    exit
fi

who_needs=$1
test=$2
shift 2
if sh -c "$test" >/dev/null 2>&1; then
    exit 0
fi
echo "$who_needs $* (as Debian names them)."
install "$@"
