# asyncstatus-api in two stages: compile in the Rust image, run in a slim Debian.
#
# The binary bundles SQLite, libpq and OpenSSL (compiled from source with the C compiler, perl
# and make of the build image), so the runtime image needs no database or TLS libraries.
#
# Dependencies are cached with cargo-chef (as in zero2prod): `cargo chef cook` compiles every
# dependency, the C libraries included, from a recipe of the manifests and Cargo.lock alone,
# into a layer of its own. Editing the workspace's code leaves the recipe, and so that layer,
# unchanged: the last step compiles only the four workspace crates and links (measured, by the
# same steps outside Docker on two shared cores: 40 s of CPU, about a minute, against 600 s of
# CPU for the dependencies). Chosen over BuildKit cache mounts (which recompile only the edited
# crate: 26 s of CPU for one api file) because it is plain layers: it works with every builder,
# also the legacy one that Debian's docker.io (20.10) uses unless DOCKER_BUILDKIT=1 and that
# refuses `RUN --mount`, and its cache can be exported and reused on another machine
# (`--cache-to`/`--cache-from`), which a cache mount cannot. cargo-chef itself comes from
# crates.io, pinned and --locked, compiled once into the first layer. Changing a Cargo.toml or
# Cargo.lock rebuilds the dependencies, as it should.
#
# The Rust image is pinned to the toolchain the tests run on (an exact tag; add its digest,
# `rust:1.95.0-bookworm@sha256:…` from `docker buildx imagetools inspect`, where a registry is
# reachable: none is where this file is maintained, and an unchecked digest would break the
# build). The runtime image follows bookworm-slim, so a rebuild picks up Debian's security
# updates; the binary needs only bookworm's libc.

FROM rust:1.95.0-bookworm AS chef
# Compiled from crates.io once, then cached with this layer.
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked -p asyncstatus-api --recipe-path recipe.json
# The whole workspace: the crates, Cargo.lock (--locked), and the files compiled into the
# binary: the migrations, config/default.toml (the built-in defaults) and the prose of the
# OpenAPI document (crates/api/src/http/openapi_description.md).
COPY . .
RUN cargo build --release -p asyncstatus-api --locked

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --uid 10001 --home-dir /app --shell /usr/sbin/nologin asyncstatus \
    && mkdir -p /app/data \
    && chown asyncstatus:asyncstatus /app/data
COPY --from=build /src/target/release/asyncstatus-api /usr/local/bin/asyncstatus-api
COPY config/ /app/config/
# Production settings unless told otherwise (ASYNCSTATUS_ENV=development, as
# docker-compose.yml sets): the cookie is Secure, logs are JSON lines.
ENV ASYNCSTATUS_CONFIG_DIR=/app/config \
    ASYNCSTATUS_ENV=production \
    ASYNCSTATUS__SERVER__HOST=0.0.0.0
WORKDIR /app
USER asyncstatus
# The default database, sqlite://data/asyncstatus.db, is /app/data/asyncstatus.db: mount a
# volume on /app/data to keep it, or set ASYNCSTATUS__DATABASE__URL to a PostgreSQL database.
EXPOSE 8080
# The slim image has no curl: the binary probes its own /healthz (on 127.0.0.1, over https
# when TLS is configured), reading the same settings as `serve`.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["asyncstatus-api", "healthcheck", "--timeout", "3s"]
ENTRYPOINT ["asyncstatus-api"]
CMD ["serve"]
