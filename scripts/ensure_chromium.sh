#!/usr/bin/env bash
# Idempotent: make sure a headless-capable Chromium exists (the UI test opens the Prefect UI
# with it). Debian's `chromium` package; installed with apt-get when missing and we are root.
set -euo pipefail
for exe in chromium chromium-browser google-chrome; do
  if command -v "$exe" >/dev/null 2>&1; then
    echo "[chromium] present: $(command -v "$exe")"
    exit 0
  fi
done
if [ "$(id -u)" != "0" ]; then
  echo "[chromium] missing and not root: install Debian's 'chromium' package (apt-get install -y chromium)" >&2
  exit 1
fi
echo "[chromium] installing Debian chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
command -v chromium >/dev/null
echo "[chromium] installed: $(command -v chromium)"
