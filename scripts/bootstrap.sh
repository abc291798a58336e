#!/usr/bin/env bash
# Install what the project needs to run and test here, skipping what is already in place:
#   - Debian packages for the local Samba AD DC (samba, samba-ad-dc, winbind, krb5-user, ldap-utils),
#     iproute2 (loopback addresses for test DCs) and openssl; their services are not started;
#   - python3-venv when `python3 -m venv` cannot work;
#   - the virtualenv .venv from requirements.txt with constraints.txt (plus requirements-dev.txt with
#     --dev), reinstalled only when those files change (hash stamp in .venv/.bootstrap-stamp).
#
# usage: scripts/bootstrap.sh [--dev]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$ROOT/.venv
STAMP=$VENV/.bootstrap-stamp
DEV=0
for arg in "$@"; do
    case $arg in
        --dev) DEV=1 ;;
        -h|--help) echo "usage: scripts/bootstrap.sh [--dev]"; exit 0 ;;
        *) echo "bootstrap: unknown argument $arg" >&2; exit 2 ;;
    esac
done

say() { echo "bootstrap: $*"; }
die() { echo "bootstrap: error: $*" >&2; exit 1; }

DEBIAN_PACKAGES=(samba samba-ad-dc winbind krb5-user ldap-utils iproute2 openssl ca-certificates)

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

package_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install these packages by hand: $*"
    export DEBIAN_FRONTEND=noninteractive
    if [[ $APT_UPDATED -eq 0 ]]; then
        say "apt-get update"
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
    # Keep the packages' services (smbd, nmbd, winbind, samba-ad-dc, postgresql, ...) from being started
    # by their maintainer scripts: policy-rc.d answering 101 forbids invoke-rc.d to start anything.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 0755 "$policy"
        created_policy=1
    fi
    say "apt-get install $*"
    local status=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" || status=$?
    if [[ $created_policy -eq 1 ]]; then
        as_root rm -f "$policy"
    fi
    [[ $status -eq 0 ]] || die "apt-get install $* failed"
}

# ---------------------------------------------------------------- Debian packages
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    package_installed "$pkg" || missing+=("$pkg")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    apt_install "${missing[@]}"
else
    say "Debian packages present: ${DEBIAN_PACKAGES[*]}"
fi

# ---------------------------------------------------------------- Python
PYTHON=""
for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then
        PYTHON=$(command -v "$candidate")
        break
    fi
done
if [[ -z $PYTHON ]]; then
    apt_install python3
    PYTHON=$(command -v python3)
fi
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    die "$PYTHON is Python $("$PYTHON" -c 'import platform; print(platform.python_version())'); 3.11 or newer is needed"
fi
PY_VERSION=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

venv_works() {
    "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1
}

venv_python_ok() {
    [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c 'import sys, pip' >/dev/null 2>&1 \
        && [[ $("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])') == "$PY_VERSION" ]]
}

if ! venv_python_ok; then
    if ! venv_works; then
        # Debian's Python ships venv's pip bootstrap in a separate package.
        apt_install python3-venv
        if ! venv_works && apt-cache show "python${PY_VERSION}-venv" >/dev/null 2>&1; then
            apt_install "python${PY_VERSION}-venv"
        fi
        venv_works || die "python -m venv does not work with $PYTHON (no venv/ensurepip)"
    fi
    if [[ -e $VENV ]]; then
        say "recreating $VENV (missing interpreter, pip, or not Python $PY_VERSION)"
        rm -rf "$VENV"
    fi
    say "creating virtualenv .venv with $PYTHON (Python $PY_VERSION)"
    "$PYTHON" -m venv "$VENV"
fi

hash_of() {
    (cd "$ROOT" && cat "$@") | sha256sum | cut -d' ' -f1
}
BASE_FILES=(requirements.txt constraints.txt)
for f in "${BASE_FILES[@]}" requirements-dev.txt; do
    [[ -f $ROOT/$f ]] || die "$f is missing"
done
base_hash="py$PY_VERSION-$(hash_of "${BASE_FILES[@]}")"
dev_hash="py$PY_VERSION-$(hash_of "${BASE_FILES[@]}" requirements-dev.txt)"

stamp_has() {
    [[ -f $STAMP ]] && grep -qxF "$1" "$STAMP"
}

if [[ $DEV -eq 1 ]]; then
    wanted="dev $dev_hash"
else
    wanted="base $base_hash"
fi

if stamp_has "$wanted"; then
    say "virtualenv .venv is up to date (${wanted%% *} requirements unchanged)"
else
    requirement_args=(-r "$ROOT/requirements.txt")
    [[ $DEV -eq 1 ]] && requirement_args+=(-r "$ROOT/requirements-dev.txt")
    say "installing Python packages into .venv: ${requirement_args[*]//$ROOT\//} -c constraints.txt"
    rm -f "$STAMP"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet \
        "${requirement_args[@]}" -c "$ROOT/constraints.txt"
    {
        echo "base $base_hash"
        if [[ $DEV -eq 1 ]]; then echo "dev $dev_hash"; fi
    } >"$STAMP"
    say "Python packages installed"
fi
say "done"
