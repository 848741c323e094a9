#!/usr/bin/env bash
# bench_api on both store backends in one run: the default sqlite file and a private PostgreSQL
# (deploy/pg-env.sh, fsync on, same machine, loopback TCP), each at the given node counts,
# a fresh store per run. Prints bench_api's tables (creates/s, get p99, end to end) per run.
# usage: bench/store.sh [BUILD_DIR] [CREATES] [NODES...]   (defaults: build, 10000, 64 1000)
set -euo pipefail
NUBO_SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$NUBO_SRC/build}
CREATES=${2:-10000}
shift $(( $# > 2 ? 2 : $# ))
NODES=("${@:-64}")
[ $# -gt 0 ] || NODES=(64 1000)
BENCH=$BUILD/bench/bench_api
[ -x "$BENCH" ] || { echo "build bench_api first ($BENCH)" >&2; exit 1; }
source "$NUBO_SRC/deploy/pg-env.sh"
pg_available || { echo "PostgreSQL server binaries missing (apt-get install postgresql-15)" >&2; exit 1; }
trap pg_stop EXIT
PG_FSYNC=on pg_start
echo "store bench: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT (fsync on), sqlite synchronous=NORMAL"
for n in "${NODES[@]}"; do
    "$BENCH" --creates "$CREATES" --nodes "$n"
    "$BENCH" --creates "$CREATES" --nodes "$n" --store-url "$(pg_url "bench_$n")"
done
