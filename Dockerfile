# shoal image: FROM scratch around a static binary built on the host.
#
# There is no multi-stage build (no golang base image) because the machines
# this is built on have a Docker Engine but no image registry. Build with:
#
#   CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/shoal ./cmd/shoal
#   CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/httpcheck ./deploy/docker/httpcheck
#   docker build -t shoal:latest .
#
# (scripts/e2e.sh does exactly this.) The example migrations are embedded in
# the binary; mount your own at /migrations and set SHOAL_DIR=/migrations.
# Runs as uid/gid 65532 ("shoal"); /data/tenants and /data/backups are owned
# by it so that fresh named volumes mounted there are writable.
FROM scratch

COPY deploy/docker/rootfs/etc/passwd deploy/docker/rootfs/etc/group /etc/
COPY --chown=65532:65532 deploy/docker/rootfs/data/ /data/
COPY --chown=65532:65532 deploy/docker/rootfs/tmp/ /tmp/
COPY bin/httpcheck /httpcheck
COPY bin/shoal /shoal

ENV TMPDIR=/tmp \
    SHOAL_ROOT=/data/tenants \
    SHOAL_LOG_FORMAT=json

USER 65532:65532
# No ./migrations under the working directory, so without SHOAL_DIR/--dir
# shoal uses its embedded example migrations.
WORKDIR /data
VOLUME ["/data/tenants", "/data/backups"]
# --listen port of `shoal work` (/healthz, /readyz, /metrics) used by the
# compose file and the Kubernetes manifests.
EXPOSE 8080

ENTRYPOINT ["/shoal"]
CMD ["--help"]
