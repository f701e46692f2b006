#!/bin/sh
# The Debian packages that tests drive, installed by `make test` when missing (one apt run, as root):
#   nginx                     the load balancer in front of three servers (tests/deploy/test_load_balancer.py)
#   chromium                  the console's browser test (tests/server/console/test_console_browser.py)
#   wrk, h2load               the load generators of `modelport bench` (tests/server/test_bench_cli.py)
#   podman, runc, mmdebstrap  the container tests build the image and run it (tests/deploy/test_container*.py;
#                             shared/reference/container-engine.md)
# Where apt-get cannot run (not root, not Debian), it says what is missing and goes on: the tests that need
# a package then skip (podman, nginx) or fail (chromium) naming it.
set -eu
need=""
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need="$need nginx"
[ -x /usr/bin/chromium ] || need="$need chromium"
command -v wrk >/dev/null || need="$need wrk"
command -v h2load >/dev/null || need="$need nghttp2-client"
for tool in podman runc mmdebstrap; do command -v "$tool" >/dev/null || need="$need $tool"; done
[ -z "$need" ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "system packages missing:$need (install them with apt-get as root; the tests that drive them fail or skip)" >&2
  exit 0
fi
echo "installing system packages:$need"
apt-get update -qq
# shellcheck disable=SC2086  # one word per package
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need
