#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages that building and testing kakusan need (.ci/packages.txt, one per line).
# As root (a fresh container) it runs apt-get directly; as a user it asks sudo. The README's quick start and
# CI both call it.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' .ci/packages.txt)
if ! command -v apt-get >/dev/null; then
  echo "install-deps: no apt-get here; install the equivalents of: ${packages[*]}" >&2
  exit 1
fi
as_root=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: not root and no sudo; run it as root" >&2; exit 1; }
  as_root=(sudo)
fi
# env passes the setting through sudo, which resets the environment.
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"
