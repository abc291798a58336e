# Shell helpers shared by scripts/bootstrap.sh, scripts/test.sh and scripts/clean-room; sourced, not run.
# Set SCRIPT_NAME (the prefix of messages) before sourcing.

say() { echo "${SCRIPT_NAME:-scripts}: $*"; }
die() { echo "${SCRIPT_NAME:-scripts}: error: $*" >&2; exit 1; }

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

# apt_install [--recommends] PACKAGE...: install from Debian, without Recommends unless asked (then apt's
# configured default applies), and without
# letting the packages' maintainer scripts start their services (smbd, nmbd, winbind, samba-ad-dc,
# postgresql, ...): policy-rc.d answering 101 forbids invoke-rc.d to start anything.
APT_UPDATED=0
apt_install() {
    local -a recommends=(--no-install-recommends)
    if [[ ${1:-} == --recommends ]]; then
        recommends=()
        shift
    fi
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install these packages by hand: $*"
    if [[ $APT_UPDATED -eq 0 ]]; then
        say "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 0755 "$policy"
        created_policy=1
    fi
    say "apt-get install $*"
    local status=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${recommends[@]}" \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" || status=$?
    if [[ $created_policy -eq 1 ]]; then
        as_root rm -f "$policy"
    fi
    [[ $status -eq 0 ]] || die "apt-get install $* failed"
}

# The project's python: the virtualenv's once scripts/bootstrap.sh made it, else python3.
project_python() {
    local root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    if [[ -x $root/.venv/bin/python ]]; then
        echo "$root/.venv/bin/python"
    else
        command -v python3 || die "python3 is required (run scripts/bootstrap.sh)"
    fi
}
