#!/usr/bin/env bash
# Install the system tools the test suite needs (Debian/Ubuntu). Idempotent: apt is only touched when
# something is missing, so it is cheap to run before every `make test`.
#   - prometheus (promtool), prometheus-alertmanager, kcat: real servers/clients used by the tests
#   - java + mvn: the pinned Kafka broker (`make kafka`, tests/support/broker.py)
#   - openssl: a private CA for the TLS broker (tests/support/tls_broker.py)
#   - chromium: headless browser that opens the audit report (tests/integration/test_report_browser.py)
#   - make, python3 >= 3.11 with venv support: the build itself
set -euo pipefail

pkgs=()
for f in /usr/bin/promtool /usr/bin/prometheus-alertmanager /usr/bin/kcat; do
  if [ ! -x "$f" ]; then
    pkgs+=(prometheus prometheus-alertmanager kcat)
    break
  fi
done
command -v java >/dev/null || pkgs+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || pkgs+=(maven)
command -v make >/dev/null || pkgs+=(make)
command -v chromium >/dev/null || pkgs+=(chromium)
command -v openssl >/dev/null || pkgs+=(openssl)

python_ok=no
for py in python3.13 python3.12 python3.11 python3; do
  if command -v "$py" >/dev/null \
    && "$py" -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python_ok=yes
    break
  fi
done
[ "$python_ok" = yes ] || pkgs+=(python3 python3-venv)

if [ "${#pkgs[@]}" -gt 0 ]; then
  echo "install-system: installing ${pkgs[*]}"
  SUDO=()  # root or sudo only when something is missing: a user with every tool needs neither
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || {
      echo "install-system: ${pkgs[*]} missing, and not root and no sudo to install them" >&2
      exit 1
    }
    SUDO=(sudo)
  fi
  # Installing prometheus/alertmanager would start them as services on :9090/:9093; the tests run
  # their own instances on free ports, so keep the packaged services from starting during install.
  created_policy=no
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
    created_policy=yes
    trap '"${SUDO[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}"
  if [ "$created_policy" = yes ]; then
    "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
    trap - EXIT
  fi
fi

missing=()
for f in /usr/bin/promtool /usr/bin/prometheus-alertmanager /usr/bin/kcat; do
  [ -x "$f" ] || missing+=("$f")
done
for c in java mvn make chromium openssl; do
  command -v "$c" >/dev/null || missing+=("$c")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-system: still missing after install: ${missing[*]}" >&2
  exit 1
fi
echo "install-system: ok (promtool, prometheus-alertmanager, kcat, java, mvn, make, chromium, openssl present)"
