#!/usr/bin/env bash
# Builds shoal and runs its main job on the embedded default: a fleet of example
# tenant DBs migrated by `shoal run` (producer + workers over an in-process NATS
# server; nothing to install). Then shows the fleet at head and re-runs it, which
# is the no-op re-check a deploy does when nothing changed.
#
# Usage: ./scripts/demo.sh            (SHOAL_DEMO_TENANTS=N, SHOAL_DEMO_DIR=DIR to change)
set -euo pipefail
cd "$(dirname "$0")/.."

tenants=${SHOAL_DEMO_TENANTS:-200}
fleet=${SHOAL_DEMO_DIR:-demo}

echo "== building bin/shoal (static, CGO_ENABLED=0)"
CGO_ENABLED=0 go build -trimpath -buildvcs=auto -o bin/shoal ./cmd/shoal   # auto: stamp the git revision (shoal --version) even where GOFLAGS says -buildvcs=false
ls -l bin/shoal

echo "== creating $tenants example tenants under $fleet/tenants"
rm -rf "$fleet"
./bin/shoal demo-fleet --root "$fleet/tenants" --tenants "$tenants"

echo "== before"
./bin/shoal fleet status --root "$fleet/tenants" || true   # exit 1: tenants behind

echo "== shoal run (embedded NATS, 4 workers)"
./bin/shoal --log-level warn run --root "$fleet/tenants" --workers 4 --report "$fleet/report.json"

echo "== after"
./bin/shoal fleet status --root "$fleet/tenants"

echo "== again: every tenant is already current"
./bin/shoal --log-level warn run --root "$fleet/tenants" --workers 4 --report "$fleet/report-again.json"
echo "report: $fleet/report.json"
