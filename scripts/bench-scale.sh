#!/usr/bin/env bash
# Fleet scale: memory and time of shoal over 10,000 and 100,000 tenants (not
# part of CI; about 15 minutes on 2 cores). For each size N it builds a
# demo-fleet tree (tenants at versions 0..5, head 6) and measures, side by
# side with `find ROOT -name '*.db'` over the same tree:
#  - `shoal run` migrating all N tenants (max RSS, time);
#  - the re-check at head: `shoal run` again, every tenant already at head
#    (the first walk after the migrate-all, then warm, then cold);
#  - `shoal fleet status`, warm cache, and cold cache when
#    /proc/sys/vm/drop_caches is writable (root);
#  - against a NATS server: `shoal produce --wait` re-checking the tree (at
#    head) and `shoal results --json` of that run (max RSS).
# and prints the ratios the targets are about (RSS at 10N / RSS at N,
# re-check / find, status / find), with the load average before and after.
#
# Usage: ./scripts/bench-scale.sh
#   SHOAL_BENCH_SIZES="10000 100000"  the sizes (the first is built with
#                                      demo-fleet, the others copy it)
#   SHOAL_BENCH_BIN=path               measure this shoal binary (e.g. an older
#                                      build) instead of building ./cmd/shoal
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${SHOAL_BENCH_SIZES:-"10000 100000"}
work=$(mktemp -d /tmp/shoal-bench-scale.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

if [ -n "${SHOAL_BENCH_BIN:-}" ]; then
  shoal=$SHOAL_BENCH_BIN
else
  CGO_ENABLED=0 go build -trimpath -o bin/shoal ./cmd/shoal
  shoal=./bin/shoal
fi
CGO_ENABLED=0 go build -trimpath -o bin/natsd ./deploy/docker/natsd
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"

cold=0
if [ -w /proc/sys/vm/drop_caches ] && (sync; echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then cold=1; fi
dropcaches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# measure NAME CMD...: runs CMD under /usr/bin/time, keeps wall seconds and
# max RSS (MiB) in $wall and $rss, prints a line.
measure() {
  local name=$1; shift
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$work/out" 2>"$work/err" || {
    echo "$name failed:"; tail -5 "$work/err"; exit 1; }
  read -r wall kib <"$work/time"
  rss=$((kib / 1024))
  printf '  %-40s %8.2fs  max RSS %5d MiB\n' "$name" "$wall" "$rss"
}
ratio() { awk "BEGIN {printf \"%.2f\", $1 / $2}"; }
findtime() { # wall seconds of find over $1
  local s e; s=$(date +%s%N); find "$1" -name '*.db' >/dev/null; e=$(date +%s%N)
  awk "BEGIN {printf \"%.2f\", ($e - $s) / 1e9}"
}

tpl="$work/template"
first=""
declare -A runrss statusrss producerss resultsrss
for n in $sizes; do
  root="$work/fleet-$n"
  if [ -z "$first" ]; then
    $shoal demo-fleet --root "$tpl" --tenants "$n" >/dev/null 2>&1
    first=$n
  fi
  # Tree of n tenants: copies of the template's tenants, renamed.
  python3 - "$tpl" "$root" "$n" <<'PY'
import os, shutil, sys
tpl, root, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
src = sorted(os.listdir(tpl))
for i in range(n):
    d = os.path.join(root, "tenant-%06d" % i)
    os.makedirs(d)
    shutil.copyfile(os.path.join(tpl, src[i % len(src)], "app.db"), os.path.join(d, "app.db"))
PY
  sync
  echo "$n tenants (load average $(cut -d' ' -f1-3 /proc/loadavg)):"
  measure "run (migrate all)" $shoal run --root "$root" --workers 4 --no-backup --report "$work/run.json"
  runrss[$n]=$rss
  # The migrate-all just wrote every DB: let the kernel write its dirty
  # metadata back before the re-check and find are timed (otherwise the
  # write-back of 100,000 inodes lands in whichever runs next).
  sync
  # The first walk after the migrate-all finds part of the tree's metadata
  # out of the caches (find too: 3.2 s there, 0.8 s after): it is reported,
  # and the ratios are taken warm (both after that walk) and cold (both
  # after dropping the caches).
  f0=$(findtime "$root")
  measure "run again (re-check, all at head)" $shoal run --root "$root" --workers 4 --no-backup --report "$work/recheck.json"
  echo "    first walks after the migrate-all: find $f0 s, then the re-check"
  [ "$(python3 -c "import json; s=json.load(open('$work/recheck.json'))['summary']; print(s['total'], s['current'])")" = "$n $n" ] ||
    { echo "re-check report is not $n current"; exit 1; }
  f1=$(findtime "$root")
  measure "re-check (warm)" $shoal run --root "$root" --workers 4 --no-backup --report "$work/recheck.json"
  recheck=$wall
  f2=$(findtime "$root")
  floor=$(awk "BEGIN {print ($f1 < $f2 ? $f1 : $f2)}")
  echo "    re-check / find ($floor s, warm): $(ratio "$recheck" "$floor")x"
  if [ "$cold" = 1 ]; then
    dropcaches; fc=$(findtime "$root")
    dropcaches; measure "re-check (cold)" $shoal run --root "$root" --workers 4 --no-backup --report "$work/recheck.json"
    echo "    re-check / find ($fc s, cold): $(ratio "$wall" "$fc")x"
  fi
  f1=$(findtime "$root")
  measure "fleet status (warm)" $shoal fleet status --root "$root" --json
  status=$wall; statusrss[$n]=$rss
  f2=$(findtime "$root")
  floor=$(awk "BEGIN {print ($f1 < $f2 ? $f1 : $f2)}")
  echo "    fleet status / find ($floor s, warm): $(ratio "$status" "$floor")x"
  if [ "$cold" = 1 ]; then
    dropcaches; fc=$(findtime "$root")
    dropcaches; measure "fleet status (cold)" $shoal fleet status --root "$root" --json
    echo "    fleet status / find ($fc s, cold): $(ratio "$wall" "$fc")x"
  fi

  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  ./bin/natsd -js -sd "$work/js-$n" -a 127.0.0.1 -p "$port" >/dev/null 2>&1 & pids+=($!)
  export SHOAL_NATS="nats://127.0.0.1:$port"
  for _ in $(seq 100); do $shoal --log-level error nats setup >/dev/null 2>&1 && break; sleep 0.1; done
  measure "produce --wait (re-check, at head)" $shoal produce --root "$root" --run-id "scale-$n" --wait --report "$work/produce.json"
  producerss[$n]=$rss
  measure "results --json" $shoal results --run-id "scale-$n" --json
  resultsrss[$n]=$rss
  kill "${pids[-1]}" 2>/dev/null || true; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
  rm -rf "$root" "$work/js-$n"
done

set -- $sizes
if [ $# -ge 2 ]; then
  a=$1; b=${!#}
  echo "max RSS at $b / at $a tenants: run $(ratio "${runrss[$b]}" "${runrss[$a]}")x," \
    "fleet status $(ratio "${statusrss[$b]}" "${statusrss[$a]}")x," \
    "produce --wait $(ratio "${producerss[$b]}" "${producerss[$a]}")x," \
    "results $(ratio "${resultsrss[$b]}" "${resultsrss[$a]}")x"
fi
[ "$cold" = 1 ] || echo "(cold-cache figures skipped: /proc/sys/vm/drop_caches is not writable)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
