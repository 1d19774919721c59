#!/usr/bin/env bash
# End-to-end test of shoal's container deployment, with a hard time bound.
#
#   scripts/e2e.sh            # build binaries + images, run e2e/ (go test -tags e2e)
#
# Needs Docker Engine and Compose (`docker compose` or docker-compose); no
# image registry: the images are built FROM scratch around binaries built
# here with CGO_ENABLED=0. Everything the test starts is torn down on exit,
# failure or timeout included (E2E_KEEP=1 keeps it for debugging).
#
# Environment: E2E_TIMEOUT (seconds, default 480), E2E_TENANTS (300),
# E2E_WORK (work dir, default a fresh temp dir), E2E_FIGURES (file to write
# the figures table to), E2E_RUN (go test -run pattern).
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
budget=${E2E_TIMEOUT:-480}
start=$(date +%s)

if ! docker info >/dev/null 2>&1; then
	echo "e2e: docker is not available (docker info failed); skipping" >&2
	exit 0
fi
if docker compose version >/dev/null 2>&1; then
	compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
	compose=(docker-compose)
else
	echo "e2e: neither 'docker compose' nor docker-compose is installed" >&2
	exit 1
fi

project=${E2E_PROJECT:-shoale2e$$}
keep_work=${E2E_WORK:+1}
work=${E2E_WORK:-$(mktemp -d /tmp/shoal-e2e.XXXXXX)}
export E2E_PROJECT=$project E2E_WORK=$work
export E2E_SHOAL_IMAGE=${E2E_SHOAL_IMAGE:-shoal:e2e} E2E_NATS_IMAGE=${E2E_NATS_IMAGE:-shoal-nats:e2e}
export E2E_SHOAL_BIN=$repo/bin/shoal
# NATS runs with the shipped users (deploy/nats); the compose file requires
# their passwords. The test sets the same ones (e2e/e2e_test.go e2ePassword).
for role in admin producer worker enqueue results; do
	export "SHOAL_NATS_${role^^}_PASSWORD=e2e-$role-password"
done

cleanup() {
	rc=$?
	if [ "${E2E_KEEP:-}" = 1 ]; then
		echo "e2e: E2E_KEEP=1: left project $project and $work" >&2
		exit $rc
	fi
	# The test tears down itself; this catches a timeout or a crash.
	SHOAL_TENANTS=$work/tenants SHOAL_BACKUPS=$work/backups SHOAL_MIGRATIONS=$work \
		E2E_REPORTS=$work/reports SHOAL_IMAGE=$E2E_SHOAL_IMAGE E2E_NATS_IMAGE=$E2E_NATS_IMAGE \
		timeout 60 "${compose[@]}" -f docker-compose.yml -f deploy/compose.test.yml -p "$project" \
		down -v --remove-orphans -t 2 >/dev/null 2>&1 || true
	# leftovers of `compose run` (producer) containers
	ids=$(docker ps -aq --filter "label=com.docker.compose.project=$project" 2>/dev/null || true)
	[ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1 || true
	if [ -z "$keep_work" ]; then rm -rf "$work"; fi
	echo "e2e: finished in $(($(date +%s) - start))s, exit $rc" >&2
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { echo "e2e: [$(($(date +%s) - start))s] $*" >&2; }

step "building static binaries (CGO_ENABLED=0)"
mkdir -p bin
export CGO_ENABLED=0
# one go build for the three (shared compilation of common packages)
timeout 300 go build -trimpath -ldflags "-s -w -X main.version=e2e" -o bin/ \
	./cmd/shoal ./deploy/docker/httpcheck ./deploy/docker/natsd

step "building images $E2E_SHOAL_IMAGE and $E2E_NATS_IMAGE (FROM scratch)"
# (the legacy builder's deprecation notice goes to stderr: silenced). The
# previous image of the same tag is removed when it changed, so that repeated
# runs leave no dangling images behind.
build_image() { # TAG DOCKERFILE
	local old new
	old=$(docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true)
	timeout 120 docker build -q -f "$2" -t "$1" . >/dev/null 2>"$work/build.log" || { cat "$work/build.log" >&2; exit 1; }
	new=$(docker image inspect -f '{{.Id}}' "$1")
	if [ -n "$old" ] && [ "$old" != "$new" ]; then docker rmi "$old" >/dev/null 2>&1 || true; fi
}
build_image "$E2E_SHOAL_IMAGE" Dockerfile
build_image "$E2E_NATS_IMAGE" deploy/docker/nats.Dockerfile

left=$((budget - ($(date +%s) - start)))
if [ "$left" -lt 60 ]; then
	echo "e2e: only ${left}s left of the ${budget}s budget after the builds" >&2
	exit 1
fi
step "running e2e tests (bound ${left}s)"
# go test's own -timeout panics with goroutine dumps and still runs cleanups;
# the outer timeout is the hard bound.
timeout --kill-after=20 "$left" go test -tags e2e -count=1 -v -timeout "$((left - 15))s" \
	-run "${E2E_RUN:-.}" ./e2e/
