# NATS server image for the e2e tests ONLY: the NATS server module pinned in
# go.mod, built as a static binary on the host, FROM scratch (no registry here):
#
#   CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/natsd ./deploy/docker/natsd
#   CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/httpcheck ./deploy/docker/httpcheck
#   docker build -f deploy/docker/nats.Dockerfile -t shoal-nats:e2e .
#
# docker-compose.yml uses the official nats:2.10-alpine image; the tests swap
# this one in with deploy/compose.test.yml.
FROM scratch

COPY deploy/docker/rootfs/etc/passwd deploy/docker/rootfs/etc/group /etc/
COPY --chown=65532:65532 deploy/docker/rootfs/tmp/ /data/
COPY bin/httpcheck /httpcheck
COPY bin/natsd /nats-server

USER 65532:65532
VOLUME ["/data"]
EXPOSE 4222 8222

ENTRYPOINT ["/nats-server"]
CMD ["-js", "-sd", "/data", "-m", "8222"]
