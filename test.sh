#!/usr/bin/env bash
# Runs the whole test suite: the README's test command, and what CI runs (.ci/run).
# Everything the tests need beyond the .NET SDK is installed or started from here.
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1

# PostgreSQL server binaries: the tests start throwaway servers of their own from them.
bash scripts/ensure-postgres.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# The multi-process cluster fault tests (real silo and gateway processes, kill -9, a heartbeating fleet) run on
# their own after the rest, so the other test assemblies running in parallel do not starve their processes.
dotnet test Presence.sln --nologo --filter "Category!=Processes" "$@" 2>&1 | tee "$log" || status=$?
dotnet test tests/Cluster.Tests --nologo --no-build --filter "Category=Processes" "$@" 2>&1 | tee -a "$log" || status=$?

# One plain summary line for every runner that reads closing lines.
passed=$(grep -oE 'Passed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
failed=$(grep -oE 'Failed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
echo
echo "$passed passed, $failed failed"
if [ "$status" -eq 0 ] && [ "$passed" -eq 0 ]; then
  echo "no test ran" >&2
  exit 1
fi
exit "$status"
