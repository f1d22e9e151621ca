# ferry in a container: a static binary in a distroless image, running as a
# non-root user. Configure it with FERRY_* variables (every flag has one) or
# a TOML file mounted into the container:
#
#   docker run --rm -e FERRY_SOURCE=redis://src:6379 -e FERRY_TARGET=redis://dst:6379 \
#     -e FERRY_SOURCE_PASSWORD -v ferry-data:/data -p 9121:9121 ferry migrate
#
# Build: make image (VERSION=… to stamp a version).

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=
RUN REVISION="$REVISION" sh deploy/build.sh /out/ferry "$VERSION" && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ferry /usr/local/bin/ferry
# /data holds the spool and checkpoints (data_dir); mount a volume there.
COPY --from=build --chown=65532:65532 /out/data /data
ENV FERRY_DATA_DIR=/data FERRY_STATUS_ADDR=0.0.0.0:9121 FERRY_LOG_FORMAT=json
VOLUME /data
# /status, /metrics, /healthz
EXPOSE 9121
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ferry"]
CMD ["--help"]
