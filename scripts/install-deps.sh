#!/usr/bin/env bash
# Install what Samen needs to build and test on Debian 12 (bookworm).
# Installs only what is missing; uses sudo when not run as root.
set -euo pipefail
pkgs=(build-essential cmake pkg-config git python3 gettext zlib1g-dev
      libsqlite3-dev libgit2-dev libmsgpack-dev libuv1-dev libsodium-dev libcmocka-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
