# Sluice container image: one `sluice` binary on debian:bookworm-slim, run as an unprivileged
# user, data (the SQLite file and the file:// bucket of the embedded default) in a volume.
#
# Where the binary comes from is chosen with a build argument:
#
#   SLUICE_BINARY=builder   (default) compiled here, in rust:1-bookworm (needs a registry
#                           for the Rust image and crates.io for the crates):
#       docker build -t sluice .
#   SLUICE_BINARY=prebuilt  copied from docker/sluice in the build context, a Linux x86-64
#                           binary built beforehand (glibc 2.36 or older, e.g. on bookworm):
#       cargo build --release -p sluice && strip -o docker/sluice target/release/sluice
#       docker build --build-arg SLUICE_BINARY=prebuilt --target prebuilt -t sluice .
#
# BuildKit (the default builder since Docker 23; DOCKER_BUILDKIT=1 on Docker 20.10) builds
# only the stages the chosen one needs. The legacy builder builds every stage written before
# its target, so the stages are ordered for it: `--target prebuilt` stops before the Rust
# stage, and `--target builder` (or no target) never needs docker/sluice.

ARG SLUICE_BINARY=builder

# ---- runtime: what both variants share ----------------------------------------------------
FROM debian:bookworm-slim AS runtime
# CA certificates: the S3 client loads the system's trust store at start, even for an http://
# endpoint, and needs it for https:// ones.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 sluice \
 && useradd --system --uid 10001 --gid sluice --home-dir /var/lib/sluice --no-create-home \
      --shell /usr/sbin/nologin sluice \
 && mkdir -p /var/lib/sluice \
 && chown sluice:sluice /var/lib/sluice
# Every flag is also an SLUICE_* variable (see `sluice serve --help`). The data folder holds
# the defaults: sqlite:///var/lib/sluice/meta.db and file:///var/lib/sluice/bucket.
# NO_COLOR: plain log lines in `docker logs`.
ENV SLUICE_DATA_DIR=/var/lib/sluice \
    NO_COLOR=1
WORKDIR /var/lib/sluice
VOLUME ["/var/lib/sluice"]
# Kafka (--kafka-addr) and HTTP: console, JSON API, /metrics, /healthz (--http-addr). The
# optional TLS listeners have no default port (--kafka-tls-addr, --https-addr).
EXPOSE 9092 8080
USER sluice
# GET /healthz on the port of SLUICE_HTTP_ADDR (default 8080), with bash's /dev/tcp: no curl.
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/sluice-healthcheck"]
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["serve"]

# ---- prebuilt: the binary from the build context ------------------------------------------
# `sluic[e]` is a pattern so that this stage also builds, without a binary, when the legacy
# builder passes through it on the way to `builder`; the final stage checks the binary.
FROM runtime AS prebuilt
COPY docker/sluice-healthcheck docker/sluic[e] /usr/local/bin/

# ---- builder: compile in the Rust image ---------------------------------------------------
FROM rust:1-bookworm AS compile
# aws-lc-sys (TLS) may build with cmake; the rest needs what the Rust image has (cc, make, perl).
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY server server
COPY broker broker
COPY app app
COPY bench bench
COPY migrations migrations
COPY style style
COPY public public
RUN cargo build --release --locked -p sluice \
 && strip -o /sluice target/release/sluice

FROM runtime AS builder
COPY docker/sluice-healthcheck /usr/local/bin/
COPY --from=compile /sluice /usr/local/bin/sluice

# ---- the image: the variant SLUICE_BINARY names --------------------------------------------
FROM ${SLUICE_BINARY}
RUN test -x /usr/local/bin/sluice || { \
      echo "no sluice binary: with SLUICE_BINARY=prebuilt put one at docker/sluice" >&2; exit 1; }
