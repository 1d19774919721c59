// Package e2e holds the end-to-end tests of shoal's container deployment
// (docker-compose.yml + deploy/compose.test.yml). They are behind the build
// tag e2e, so `go test ./...` does not run them; run scripts/e2e.sh.
package e2e
