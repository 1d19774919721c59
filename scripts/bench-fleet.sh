#!/usr/bin/env bash
# Fleet-scale figures, each next to a floor measured in the same run:
#  - `shoal fleet status` over N and 10N tenant files (all at head), against
#    `find ROOT -name '*.db'` walking the same tree;
#  - the scheduled straggler re-check: `shoal produce --only-behind --wait` over
#    N tenants of which 90% are current, with one `shoal work --concurrency 2`.
#
# Usage: ./scripts/bench-fleet.sh      SHOAL_BENCH_FLEET=10000 (N; 10N is also run)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${SHOAL_BENCH_FLEET:-10000}
big=$((n * 10))
work=$(mktemp -d /tmp/shoal-bench-fleet.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

CGO_ENABLED=0 go build -trimpath -o bin/shoal ./cmd/shoal
CGO_ENABLED=0 go build -trimpath -o bin/natsd ./deploy/docker/natsd
./bin/shoal --log-level error migrate --db "$work/head.db" >/dev/null
./bin/shoal --log-level error migrate --db "$work/old.db" --to 3 >/dev/null

# make_fleet ROOT COUNT BEHIND_EVERY: COUNT copies of head.db as ROOT/t-NNNNNN/app.db,
# every BEHIND_EVERY-th one a copy of old.db instead (0: none behind).
make_fleet() {
  python3 - "$work" "$1" "$2" "$3" <<'PY'
import os, shutil, sys
work, root, count, every = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for i in range(count):
    d = os.path.join(root, "t-%06d" % i)
    os.makedirs(d)
    src = "old.db" if every and i % every == 0 else "head.db"
    shutil.copyfile(os.path.join(work, src), os.path.join(d, "app.db"))
PY
  sync
}

secs() { awk "BEGIN {printf \"%.2f\", ($2 - $1) / 1e9}"; }

for count in "$n" "$big"; do
  root="$work/fleet-$count"
  make_fleet "$root" "$count" 0
  s=$(date +%s%N); find "$root" -name '*.db' >/dev/null; e=$(date +%s%N); floor=$(secs "$s" "$e")
  s=$(date +%s%N); ./bin/shoal fleet status --root "$root" --json >/dev/null; e=$(date +%s%N); t=$(secs "$s" "$e")
  echo "fleet status, $count tenants at head: ${t}s ($(awk "BEGIN {printf \"%.0f\", $count / $t}") files/s); find over the same tree: ${floor}s; ratio $(awk "BEGIN {printf \"%.1f\", $t / $floor}")x"
  rm -rf "$root"
done

root="$work/stragglers"
make_fleet "$root" "$n" 10
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
./bin/natsd -js -sd "$work/js" -a 127.0.0.1 -p "$port" >/dev/null 2>&1 & pids+=($!)
export SHOAL_NATS="nats://127.0.0.1:$port"
for _ in $(seq 100); do ./bin/shoal --log-level error nats setup >/dev/null 2>&1 && break; sleep 0.1; done
./bin/shoal --log-level error work --root "$root" --concurrency 2 --no-backup >/dev/null 2>&1 & pids+=($!)
s=$(date +%s%N)
./bin/shoal --log-level error produce --root "$root" --only-behind --wait --report "$work/report.json" >/dev/null 2>"$work/produce.err"
e=$(date +%s%N)
t=$(secs "$s" "$e")
migrated=$(python3 -c "import json,sys; r=json.load(open('$work/report.json')); print(r['summary']['total'], r['summary'].get('migrated', 0))")
s=$(date +%s%N); ./bin/shoal fleet status --root "$root" >/dev/null; e=$(date +%s%N)
echo "produce --only-behind --wait, $n tenants, 90% current: ${t}s (published and migrated: $migrated); fleet status after: $(secs "$s" "$e")s, all at head"
