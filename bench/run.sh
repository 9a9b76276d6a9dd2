#!/usr/bin/env bash
# Builds the gateway, the silo and the benchmark tools once (Release), runs the benchmark scenarios one after the other on
# 127.0.0.1, and prints a results table. Every process it starts is stopped when it ends, however it ends.
#
#   bench/run.sh                 quick mode: 100k devices, 5 s throughput runs (about 8 minutes on 2 cores)
#   bench/run.sh --full          the budgets' sizes: 1M devices, 15 s runs x 2 rounds (about 20-30 minutes)
#   bench/run.sh --only "throughput delivery" --no-build
#   bench/run.sh --full --only storm -- --timeout 240     (arguments after -- go to every scenario)
#   bench/run.sh --only postgres   PostgreSQL vs memory storage, on a throwaway PostgreSQL (opt-in; ~5 minutes)
#   bench/run.sh --only auth       device-token vs auth mode none heartbeat throughput (opt-in; 3-5 minutes)
#   bench/run.sh --only simulator  what one fleet simulator process drives against bare Kestrel (about 1 minute)
#   bench/run.sh --only cluster    2 gateways + 2 silos vs embedded on PostgreSQL: throughput, silo failover, delivery (opt-in; ~5 minutes)
set -euo pipefail

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODE=quick
SCENARIOS="client simulator throughput memory storm delivery"
BUILD=1
OUT=""
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) MODE=quick ;;
    --full) MODE=full ;;
    --only) SCENARIOS="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --no-build) BUILD=0 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

OUT="${OUT:-$ROOT/bench/results/$(date -u +%Y%m%d-%H%M%S)-$MODE}"
mkdir -p "$OUT"
PIDFILE="$OUT/children.pid"
RUNNER_PID=""

# The runner kills its own children on exit and deletes its temporary directories (a throwaway PostgreSQL's data);
# this also covers the runner being killed outright.
cleanup() {
  local status=$?
  if [[ -n "$RUNNER_PID" ]] && kill -0 "$RUNNER_PID" 2>/dev/null; then
    kill -TERM "$RUNNER_PID" 2>/dev/null || true
    sleep 2
    kill -KILL "$RUNNER_PID" 2>/dev/null || true
  fi
  if [[ -s "$PIDFILE" ]]; then
    while read -r pid; do
      [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null || true
    done < "$PIDFILE"
  fi
  if [[ -s "$PIDFILE.dirs" ]]; then
    while read -r dir; do
      [[ "$dir" == */presence-bench-* ]] && rm -rf -- "$dir" || true
    done < "$PIDFILE.dirs"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ "$BUILD" == 1 ]]; then
  echo "== build (Release)"
  for project in src/Gateway/Gateway.csproj src/Silo/Silo.csproj src/Agent/Agent.csproj bench/BareKestrel/BareKestrel.csproj bench/Runner/Runner.csproj; do
    if ! dotnet build -c Release --nologo "$ROOT/$project" > "$OUT/build.log" 2>&1; then
      tail -n 30 "$OUT/build.log" >&2
      echo "build of $project failed (full log: $OUT/build.log)" >&2
      exit 1
    fi
    echo "   $project: $(grep -E '^ +[0-9]+ Warning' "$OUT/build.log" | tr -s ' ')"
  done
fi

RUNNER="$ROOT/bench/Runner/bin/Release/net10.0/Presence.Runner.dll"
MODE_FLAG=()
BOUND=900
if [[ "$MODE" == full ]]; then
  MODE_FLAG=(--full)
  BOUND=3600
fi

FAILED=()
for scenario in $SCENARIOS; do
  # Each scenario is bounded in time; on expiry the runner gets SIGTERM and stops its children.
  timeout --signal=TERM --kill-after=30 "$BOUND" \
    dotnet "$RUNNER" "$scenario" --out "$OUT" --pidfile "$PIDFILE" --root "$ROOT" "${MODE_FLAG[@]}" "${EXTRA[@]}" &
  RUNNER_PID=$!
  if ! wait "$RUNNER_PID"; then
    FAILED+=("$scenario")
    echo "!! scenario $scenario failed (see $OUT/logs)" >&2
  fi
  RUNNER_PID=""
done

echo
echo "== results ($MODE mode) in $OUT"
dotnet "$RUNNER" report --out "$OUT" | tee "$OUT/results.md"
if [[ ${#FAILED[@]} -gt 0 ]]; then
  echo "failed scenarios: ${FAILED[*]}" >&2
  exit 1
fi
