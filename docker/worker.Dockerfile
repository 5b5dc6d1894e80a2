# modeldock inference worker. The build context is staged by
# src/runtime/docker/image-builder.ts (`npm run images`): app/ holds the bundled worker
# and the linux-x64 ONNX Runtime binaries only.
ARG BASE_IMAGE=node:20-bookworm-slim
FROM ${BASE_IMAGE}
WORKDIR /app
COPY app/ /app/
ENV NODE_ENV=production \
    ORT_DISABLE_TELEMETRY=1 \
    MODELDOCK_WORKER_PORT=8000 \
    MODELDOCK_MODELS_DIR=/models \
    MODELDOCK_DATASETS_DIR=/datasets
# Non-root, numeric so it works on a base without /etc/passwd.
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["node", "/app/worker.mjs"]
