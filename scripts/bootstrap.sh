#!/usr/bin/env bash
# Install what the project needs to run and test here, skipping what is already in place:
#   - Debian packages for the local Samba AD DC (samba, samba-ad-dc, samba-ad-provision, winbind,
#     krb5-user, ldap-utils), iproute2 (loopback addresses for test DCs), openssl and ca-certificates;
#     their services are not started; afterwards a check that the files provisioning and the tests use
#     are there (a package list that installs can still lack them: --no-install-recommends skips
#     Recommends such as samba-ad-provision, the schema files provisioning reads);
#   - Python 3.11 or newer: Debian's python3 (3.11 on Debian 12) when there is none, and python3-venv
#     when `python3 -m venv` cannot work;
#   - the virtualenv .venv from requirements.txt with constraints.txt (plus requirements-dev.txt with
#     --dev), reinstalled only when those files change (hash stamp in .venv/.bootstrap-stamp);
#   - with --dev: Azurite (the Azure Storage emulator the `azurite` tests start) from npm under .local/azurite,
#     and Debian's nodejs and npm when there is no npm.
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

SCRIPT_NAME=bootstrap
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

DEBIAN_PACKAGES=(samba samba-ad-dc samba-ad-provision winbind krb5-user ldap-utils iproute2 openssl ca-certificates)

# What the local domain and the tests use, each with the package that brings it.
REQUIRED_COMMANDS=(
    samba:samba
    samba-tool:samba-common-bin
    kinit:krb5-user
    ldapsearch:ldap-utils
    ip:iproute2
    openssl:openssl
)
REQUIRED_FILES=(
    /usr/share/samba/setup/provision.ldif:samba-ad-provision
    /usr/share/samba/setup/ad-schema/AD_DS_Attributes__Windows_Server_2012_R2.ldf:samba-ad-provision
    /usr/share/samba/setup/ad-schema/AD_DS_Classes__Windows_Server_2012_R2.ldf:samba-ad-provision
    /etc/ssl/certs/ca-certificates.crt:ca-certificates
)

check_installation() {
    local entry name package problems=()
    for entry in "${REQUIRED_COMMANDS[@]}"; do
        name=${entry%%:*} package=${entry#*:}
        # samba lives in /usr/sbin, which a non-root PATH may lack.
        PATH=$PATH:/usr/sbin:/sbin command -v "$name" >/dev/null 2>&1 \
            || problems+=("command $name (package $package)")
    done
    for entry in "${REQUIRED_FILES[@]}"; do
        name=${entry%%:*} package=${entry#*:}
        [[ -f $name ]] || problems+=("file $name (package $package)")
    done
    if ! compgen -G '/usr/share/samba/setup/ad-schema/*.ldf' >/dev/null; then
        problems+=("schema files /usr/share/samba/setup/ad-schema/*.ldf (package samba-ad-provision)")
    fi
    if [[ ${#problems[@]} -gt 0 ]]; then
        local problem
        for problem in "${problems[@]}"; do
            echo "bootstrap: missing after installing: $problem" >&2
        done
        die "the installed packages are not enough for the local domain; reinstall the packages named above" \
            "(apt-get install --reinstall PACKAGE) and check that dpkg does not exclude their paths (/etc/dpkg/dpkg.cfg.d/)"
    fi
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
check_installation

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

AZURITE_VERSION=3.35.0
azurite_version() {
    "$VENV/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' \
        "$ROOT/.local/azurite/node_modules/azurite/package.json" 2>/dev/null || true
}
if [[ $DEV -eq 1 && $(azurite_version) != "$AZURITE_VERSION" ]]; then
    command -v npm >/dev/null 2>&1 || apt_install nodejs npm
    say "installing Azurite $AZURITE_VERSION with npm into .local/azurite"
    npm install --prefix "$ROOT/.local/azurite" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION"
fi
say "done"
