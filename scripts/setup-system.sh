#!/usr/bin/env bash
# Debian packages the test suite drives for real: PortAudio + PulseAudio (audio capture),
# PostgreSQL (the operations-centre store), Chromium + ChromeDriver (the dashboard).
# Installs only what is missing; needs root (CI runs as root).
set -euo pipefail
packages=(libportaudio2 pulseaudio pulseaudio-utils alsa-utils libasound2-plugins postgresql chromium chromium-driver)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
