#!/usr/bin/env bash
# Runs every check CI runs: formatting, vet, the race-enabled test suite.
# Usage: ./scripts/test.sh   (SHOAL_DRILL_SCALE=10 runs every drill at ten times its CI count)
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's nats-server (2.9.x) lets the fleet tests also run against the
# oldest server shoal supports; without it those cases report a skip.
if ! command -v nats-server >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null) \
    || echo "test.sh: could not install nats-server from apt; the 2.9 compatibility test will be skipped" >&2
fi

echo "== gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:" >&2
  echo "$unformatted" >&2
  exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...
