# The relay's image (used by deploy/compose.yaml).
FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p fsn-relay

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/fullscript-notifier-relay /usr/local/bin/
USER 65534:65534
EXPOSE 8787
ENTRYPOINT ["/usr/local/bin/fullscript-notifier-relay"]
