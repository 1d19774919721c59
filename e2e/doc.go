// Package e2e holds the end-to-end tests. The container tests of shoal's
// deployment (docker-compose.yml + deploy/compose.test.yml) are behind the
// build tag e2e, so `go test ./...` does not run them; run scripts/e2e.sh.
// The NATS cluster drill (cluster_test.go: three nats-server processes, a
// node killed mid-run) runs with `go test ./...` and needs the system's
// nats-server (scripts/test.sh installs Debian's), else it is skipped.
package e2e
