#!/usr/bin/env bash
# Sets everything up for `make demo` (arg: demo) or `make test` (arg: test):
# Debian packages, a local virtualenv in .venv, and the project with its dependencies.
# Idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
purpose="${1:-demo}"

demo_pkgs=(python3-venv espeak-ng sox socat)
test_pkgs=("${demo_pkgs[@]}" sip-tester baresip flite chromium iproute2)
if [ "$purpose" = test ]; then pkgs=("${test_pkgs[@]}"); else pkgs=("${demo_pkgs[@]}"); fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    echo "bootstrap: installing Debian packages with sudo: ${missing[*]}"
    sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bootstrap: these Debian packages are missing: ${missing[*]}" >&2
    echo "bootstrap: install them as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

py="${PYTHON:-python3}"
"$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
  echo "bootstrap: Python 3.11 or newer is needed ($py is $("$py" --version 2>&1))" >&2; exit 1; }
[ -x .venv/bin/python ] || "$py" -m venv .venv

# Reinstall only when the dependency list changed.
stamp=.venv/.voxeron-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)-$purpose"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ "$want" != "$have" ] && ! { [ "$purpose" = demo ] && [ "${have%-test}" = "${want%-demo}" ]; }; then
  echo "bootstrap: installing the project into .venv"
  extras=""; [ "$purpose" = test ] && extras="[dev]"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -e ".$extras" 2> >(grep -v "^WARNING: Location" >&2)
  echo "$want" > "$stamp"
fi
