# modeldock router, for the original deployment: run with the host's Docker socket
# mounted (see README). The build context is staged by image-builder.ts: app/ holds the
# bundled router, better-sqlite3's native module and the example store.
ARG BASE_IMAGE=node:20-bookworm-slim
FROM ${BASE_IMAGE}
WORKDIR /app
COPY app/ /app/
ENV NODE_ENV=production \
    MODELDOCK_PORT=8080 \
    MODELDOCK_STORE=sqlite:/data/modeldock.db \
    MODELDOCK_MODELS_DIR=/models \
    MODELDOCK_DATASETS_DIR=/datasets \
    MODELDOCK_EXAMPLE_STORE=/app/example \
    MODELDOCK_HOST=0.0.0.0 \
    MODELDOCK_GENERATED_KEY_FILE=/data/api-key
# The state database's default is set under its old name, MODELDOCK_STORE, so that
# `-e MODELDOCK_DATABASE=…` (which wins) and `-e MODELDOCK_STORE=…` both replace it.
# In a container the router listens on all interfaces, so it never runs without a key:
# given none (MODELDOCK_API_KEY / _FILE) and no MODELDOCK_AUTH=off, it generates an admin
# key into /data/api-key (mode 0600, kept on the volume) and logs how to read it.
# The router talks to the Docker socket, which belongs to root on the host; workers it
# creates run unprivileged.
VOLUME ["/data"]
# HTTP (MODELDOCK_PORT) and the gRPC inference service (MODELDOCK_GRPC_PORT).
EXPOSE 8080 8081
# Young-generation semi-spaces capped at 8 MiB (V8's default grows them to 16): ~10-15 MiB
# less resident memory under load at no measurable CPU cost (BENCHMARKS.md, scale).
ENTRYPOINT ["node", "--max-semi-space-size=8", "/app/router.mjs"]
CMD ["start"]
