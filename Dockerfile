# asyncstatus-api in two stages: compile in the Rust image, run in a slim Debian.
#
# The binary bundles SQLite, libpq and OpenSSL (compiled from source with the C compiler, perl
# and make of the build image), so the runtime image needs no database or TLS libraries.

FROM rust:1-bookworm AS build
WORKDIR /src
# The whole workspace: the crates, Cargo.lock (--locked), and the files compiled into the
# binary: the migrations, config/default.toml (the built-in defaults) and docs/openapi.json.
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
ENV ASYNCSTATUS_CONFIG_DIR=/app/config \
    ASYNCSTATUS__SERVER__HOST=0.0.0.0
WORKDIR /app
USER asyncstatus
# The default database, sqlite://data/asyncstatus.db, is /app/data/asyncstatus.db: mount a
# volume on /app/data to keep it, or set ASYNCSTATUS__DATABASE__URL to a PostgreSQL database.
EXPOSE 8080
ENTRYPOINT ["asyncstatus-api"]
CMD ["serve"]
