# kmm-render's image, which the chart's drift CronJob runs (drift.enabled); it also holds
# kmm-upgrade, the upgrade controller (upgrade.enabled). `make image` builds the same image
# without a container engine (internal/image: same files, same user, same entrypoint), for
# linux/amd64 and linux/arm64, reproducibly; this Dockerfile is for those who build with one:
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t REGISTRY/kmm-render:TAG .
#
# Static binaries on an empty base: the only other files are /etc/passwd and /etc/group with
# the nonroot user 65532 (internal/image/rootfs), so there is no base image to pin or patch. The
# CronJob and the Deployment run it with a read-only root filesystem.
FROM golang:1.26.8-bookworm AS build
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-X kmm.dev/kmm/pkg/version.Version=${VERSION}" -o /out/ ./cmd/kmm-render ./cmd/kmm-upgrade

FROM scratch
COPY internal/image/rootfs/ /
COPY --from=build /out/kmm-render /kmm-render
# The upgrade controller (upgrade.enabled), run as the Deployment's command.
COPY --from=build /out/kmm-upgrade /kmm-upgrade
USER 65532:65532
ENTRYPOINT ["/kmm-render"]
