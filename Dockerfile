# syntax=docker/dockerfile:1
#
# keyward container image: one static-ish binary on distroless.
#
#   docker build -t keyward:0.1.0 .
#   docker run --rm -p 50051:50051 -e KEYWARD_DATABASE_URL=postgres://... keyward:0.1.0
#
# The binary links glibc and libgcc_s, so the runtime base is distroless/cc
# (glibc, libgcc, CA certificates, tzdata; no shell, no package manager).
# Build caches (the cargo registry and target/) live in BuildKit cache mounts,
# so a source change does not download or rebuild the dependencies again.

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin keyward \
 && install -D -m 0755 target/release/keyward /out/keyward

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="keyward" \
      org.opencontainers.image.description="An API-key authority for microservices (gRPC, Envoy ext_authz)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/keyward /usr/local/bin/keyward
# gRPC on all interfaces inside the container, IPv4 and IPv6 ([::] falls
# back to IPv4 alone without IPv6); the metrics side port is
# opt-in (KEYWARD_METRICS_LISTEN=[::]:9090, as the Helm chart sets it).
ENV KEYWARD_LISTEN=[::]:50051 \
    KEYWARD_LOG_FORMAT=json
USER 65532:65532
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/keyward"]
CMD ["serve"]
