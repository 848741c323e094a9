#!/usr/bin/env bash
# The scale simulation (issue 17): bench_api at each cluster size on both store backends in one
# run, the default sqlite file and a private PostgreSQL (deploy/pg-env.sh, fsync on, same
# machine, loopback TCP), a fresh store per size. Each backend's table ends with every size's
# ratios against the first (creates/s, create CPU, get p99, heartbeat CPU per node, memory per
# instance, load time).
# env: SIZES (default "64 1000 10000"), PER_NODE instances per node (default 10: 100,000 at
# 10,000 nodes), CREATES timed creates per size (default 5000), GETS (5000), IDLE_S heartbeat
# window (10), BACKENDS (default "sqlite postgresql")
# usage: bench/scale.sh [BUILD_DIR]   (a Release build without sanitizers, e.g. build-rel)
set -euo pipefail
NUBO_SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$NUBO_SRC/build-rel}
BENCH=$BUILD/bench/bench_api
[ -x "$BENCH" ] || { echo "build bench_api first ($BENCH)" >&2; exit 1; }
SIZES=${SIZES:-64 1000 10000}
ARGS=(--nodes "$(echo $SIZES | tr ' ' ,)" --per-node "${PER_NODE:-10}" --creates "${CREATES:-5000}"
      --gets "${GETS:-5000}" --idle-s "${IDLE_S:-10}")
rc=0
for b in ${BACKENDS:-sqlite postgresql}; do
    case $b in
    sqlite)
        echo "scale: sqlite (synchronous=NORMAL), sizes $SIZES"
        "$BENCH" "${ARGS[@]}" || rc=1 ;;
    postgresql)
        source "$NUBO_SRC/deploy/pg-env.sh"
        pg_available || { echo "PostgreSQL server binaries missing (apt-get install postgresql-15)" >&2; exit 1; }
        trap pg_stop EXIT
        PG_FSYNC=on pg_start
        for n in $SIZES; do pg_url "bench_$n" > /dev/null; done
        echo "scale: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT (fsync on), sizes $SIZES"
        "$BENCH" "${ARGS[@]}" --store-url "postgresql://nubo@127.0.0.1:$PG_PORT/bench_%d" || rc=1 ;;
    esac
done
exit $rc
