# kmm-render's image, which the chart's drift CronJob runs (drift.enabled); it also holds
# kmm-upgrade, the upgrade controller (upgrade.enabled). No public image is
# published: build it, push it to your registry, and pin it in drift.image:
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t REGISTRY/kmm-render:TAG .
#   docker push REGISTRY/kmm-render:TAG
#
# A static binary on distroless, non-root: the CronJob runs it with a read-only root filesystem.
FROM golang:1.26.8-bookworm AS build
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-X kmm.dev/kmm/pkg/version.Version=${VERSION}" -o /out/ ./cmd/kmm-render ./cmd/kmm-upgrade

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kmm-render /kmm-render
# The upgrade controller (upgrade.enabled), run as the Deployment's command.
COPY --from=build /out/kmm-upgrade /kmm-upgrade
USER 65532:65532
ENTRYPOINT ["/kmm-render"]
