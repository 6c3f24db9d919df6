#!/usr/bin/env bash
# Headless Chromium for the browser test, from Debian's packages (never `playwright install`).
# Without it the browser test skips and says why.
set -u
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
    || echo "install_browser: could not install chromium; the browser test will be skipped" >&2
else
  echo "install_browser: not root or no apt-get; the browser test will be skipped" >&2
fi
exit 0
