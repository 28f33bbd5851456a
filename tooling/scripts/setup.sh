#!/usr/bin/env bash
# Prepares a machine to build, run and test the lm monorepo. Safe to run again.
#
#   1. checks Node (>= 20.19),
#   2. installs pnpm 10 with npm if it is missing,
#   3. installs the system packages WebGPU needs on a machine without a GPU (Debian `chromium`, which
#      ships the SwiftShader Vulkan driver, and `libvulkan1`) when running as root with apt-get;
#      otherwise prints exactly what to install (WebGPU tests then skip, unless LM_REQUIRE_WEBGPU=1),
#   4. installs the workspace's dependencies (`pnpm install --frozen-lockfile`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
say() { printf '[setup] %s\n' "$*"; }

# 1. Node
if ! command -v node >/dev/null 2>&1; then
  say "Node.js is not installed: install Node 20.19+ (https://nodejs.org) and run this again." >&2
  exit 1
fi
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  say "Node $(node --version) is too old: this project needs Node >= 20.19." >&2
  exit 1
fi

# 2. pnpm (corepack is not relied on: its signature check fails on some machines)
if ! command -v pnpm >/dev/null 2>&1; then
  say "pnpm not found: npm install -g pnpm@10"
  npm install -g pnpm@10 --no-audit --no-fund
fi
say "node $(node --version), pnpm $(pnpm --version)"

# 3. WebGPU system packages (SwiftShader via Debian's chromium; the Vulkan loader)
SWIFTSHADER_ICD=/usr/lib/chromium/vk_swiftshader_icd.json
have_vulkan_loader() { ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1' || [ -e /usr/lib/x86_64-linux-gnu/libvulkan.so.1 ] || [ -e /usr/lib/aarch64-linux-gnu/libvulkan.so.1 ]; }
if [ -x /usr/bin/chromium ] && [ -e "$SWIFTSHADER_ICD" ] && have_vulkan_loader; then
  say "WebGPU system packages present (chromium, libvulkan1)"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  say "installing WebGPU system packages: apt-get install -y chromium libvulkan1"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium libvulkan1
else
  say "WebGPU system packages are missing. WebGPU tests will be SKIPPED until you install them:"
  say "    sudo apt-get update && sudo apt-get install -y chromium libvulkan1"
  say "(Debian/Ubuntu; elsewhere: a Chromium at /usr/bin/chromium or \$LM_CHROMIUM, and a Vulkan driver Dawn accepts)"
fi

# 4. workspace dependencies
if [ -f pnpm-lock.yaml ]; then
  pnpm install --frozen-lockfile
else
  pnpm install
fi
say "done"
