#!/usr/bin/env bash
# classhub's one entry, for a fresh Debian or Ubuntu server (run as root, from the checkout):
#
#   ./classhub.sh                bring up the hub: the Python environment (.venv, pinned packages),
#                                a Docker engine when none answers, the images, the hub; ends with
#                                the URL, the admin's login and how students reach it
#   ./classhub.sh TASK [ARGS]    any task: ./classhub.sh add-user ann, ./classhub.sh status, ...
#                                (the same as `invoke TASK` inside .venv; --list lists them)
#   ./classhub.sh test [ARGS]    every test: what the tests need (Debian packages, the test tools,
#                                the test sign-in provider, the engine), then nox (ARGS go to nox)
#
# It installs only what is missing, so running it again costs a second.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

say() { printf 'classhub: %s\n' "$*" >&2; }

apt_install() {  # apt_install PACKAGE... (only those not installed yet)
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null; then
        say "needs the Debian packages ${missing[*]}: install them, then run this again"
        exit 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
        say "needs the Debian packages ${missing[*]}: run this as root (sudo $0)"
        exit 1
    fi
    say "installing ${missing[*]} (apt-get) ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

python_env() {  # python_env PINS: .venv with those pins and classhub, installed when they change
    local pins=$1 stamp=".venv/.classhub-$1" want
    python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
    if [ ! -x .venv/bin/python ]; then
        say "making the Python environment .venv ..."
        python3 -m venv .venv
    fi
    want=$(cat "$pins" pyproject.toml | sha256sum | cut -c1-16)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "installing the pinned Python packages ($pins) ..."
        .venv/bin/pip install -q --disable-pip-version-check -r "$pins"
        .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
        printf '%s\n' "$want" >"$stamp"
    fi
}

case "${1:-}" in
    "")
        python_env requirements.txt
        .venv/bin/invoke engine
        exec .venv/bin/invoke setup
        ;;
    test)
        shift
        # A real nginx and a real browser for the tests; Node.js for their sign-in provider; ssh to
        # reach the test swarm's servers, and a registry to stand in for a site's; Let's Encrypt's
        # test CA (pebble), a DNS server that takes RFC 2136 updates (BIND) and certbot for the
        # certificate tests.
        apt_install nginx-light chromium chromium-driver ca-certificates python3-venv btrfs-progs openssh-client docker-registry \
            pebble bind9 bind9-dnsutils certbot
        command -v npm >/dev/null || apt_install nodejs npm
        # The nginx package starts a server on port 80 where an init system exists; the tests
        # run their own.
        nginx -s stop 2>/dev/null || true
        python_env requirements-dev.txt
        say "the tests' OpenID Connect provider (tests/idp, pinned by its lock) ..."
        (cd tests/idp && npm ci --no-audit --no-fund --loglevel=error)
        .venv/bin/invoke engine
        exec .venv/bin/nox "$@"
        ;;
    *)
        python_env requirements.txt
        exec .venv/bin/invoke "$@"
        ;;
esac
