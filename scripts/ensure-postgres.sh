#!/usr/bin/env bash
# Makes sure the PostgreSQL 15 server binaries are there: the tests start throwaway servers of their own from them
# (tests/Testing/PostgresServer.cs), never a system server. Quick when they are installed; otherwise, as root on
# Debian 12, installs the Debian package `postgresql`. Run by test.sh.
set -euo pipefail

bin=${PRESENCE_PG_BIN:-/usr/lib/postgresql/15/bin}
if [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ]; then
  exit 0
fi
if [ -n "${PRESENCE_PG_BIN:-}" ]; then
  echo "ensure-postgres: PRESENCE_PG_BIN=$bin holds no initdb and pg_ctl; point it at PostgreSQL's bin directory or unset it" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-postgres: PostgreSQL server binaries not found in $bin; the tests need them." >&2
  echo "  Install them as root: apt-get install postgresql (Debian 12), or set PRESENCE_PG_BIN to their directory." >&2
  exit 1
fi

echo "ensure-postgres: installing the Debian package postgresql"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql
# The package creates and may start a cluster of its own on port 5432; the tests never use it.
if command -v pg_ctlcluster > /dev/null; then
  pg_ctlcluster 15 main stop > /dev/null 2>&1 || true
fi
if [ ! -x "$bin/initdb" ]; then
  echo "ensure-postgres: postgresql installed, yet $bin/initdb is missing" >&2
  exit 1
fi
