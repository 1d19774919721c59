#!/usr/bin/env bash
# The benchmark command: every figure as a ratio to a floor measured in the same
# run on the same files (os.Stat, a bare database/sql open, a bare
# single-transaction loop, io.Copy+fsync, a bare process start).
#
# Usage: ./scripts/bench.sh        SHOAL_BENCH_DBS=1000 (fresh DBs), SHOAL_BENCH_MB=500 (backup size)
set -euo pipefail
cd "$(dirname "$0")/.."
export SHOAL_BENCH_DBS=${SHOAL_BENCH_DBS:-1000}
export SHOAL_BENCH_MB=${SHOAL_BENCH_MB:-100}

echo "== engine (SHOAL_BENCH_DBS=$SHOAL_BENCH_DBS fresh DBs x 20 migrations)"
go test ./engine -run '^$' -bench 'CurrentCached|CurrentFirstCheck|FreshDBs' -benchtime 1x -count 3 | grep -E '^Benchmark'

echo "== backup, snapshot and restore of a ${SHOAL_BENCH_MB} MB DB vs io.Copy + fsync"
go test ./engine -run '^$' -bench 'BackupVsCopy|SnapshotRestore' -benchtime 1x | grep -E '^Benchmark' || true

echo "== shoal run (embedded NATS) vs the engine alone and a bare loop: SHOAL_BENCH_DBS fresh tenants x 20 migrations"
go test ./local -run '^$' -bench 'RunVsFloors' -benchtime 1x | grep -E '^Benchmark'
echo "== shoal run over 500 fresh tenants with the example migrations, 1 and 4 workers, vs the engine alone"
go test ./local -run '^$' -bench 'BenchmarkRun$' -benchtime 1x | grep -E '^Benchmark'
echo "== fleet scale (fleet status over 10k and 100k files, --only-behind): ./scripts/bench-fleet.sh"

echo "== binary"
CGO_ENABLED=0 go build -trimpath -o bin/shoal ./cmd/shoal
size=$(stat -c %s bin/shoal)
echo "bin/shoal: $size bytes ($((size / 1024 / 1024)) MiB), CGO_ENABLED=0"

echo "== shoal migrate on a current DB, process start included, vs /bin/true (median of 31)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
./bin/shoal --log-level error migrate --db "$tmp/t.db" >/dev/null
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_cmd() {
  for _ in $(seq 31); do
    s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000 ))
  done | median
}
shoal_us=$(time_cmd ./bin/shoal --log-level error migrate --db "$tmp/t.db")
true_us=$(time_cmd /bin/true)
echo "shoal migrate (current): ${shoal_us} us; /bin/true: ${true_us} us; ratio $(awk "BEGIN {printf \"%.1f\", $shoal_us/$true_us}")x"
