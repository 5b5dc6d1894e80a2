# Seldon MLServer with its scikit-learn runtime, behind modeldock's guard: the image the
# built-in `mlserver` serving runtime runs on Docker (docs/runtimes.md). Built offline by
# src/runtime/docker/image-builder.ts (`npm run images`): PYTHON_BASE is the host's
# Python with MLServer's packages taken from the tests' venv (built once per set of
# package versions), NODE_BASE the worker's base (Node.js for the guard), app/ the guard.
ARG PYTHON_BASE
ARG NODE_BASE=node:20-bookworm-slim
FROM ${NODE_BASE} AS node
FROM ${PYTHON_BASE}
COPY --from=node / /
COPY app/ /app/
ENV PATH=/usr/local/bin:/usr/bin:/bin \
    NODE_ENV=production \
    PYTHONPATH=/opt/python/site-packages \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
# Non-root, numeric so it works on a base without /etc/passwd.
USER 10001:10001
WORKDIR /tmp
# The guard listens on 8000 (MODELDOCK_GUARD_PORT) and starts the server it is given:
# `-- mlserver start <repository>` (the runtime passes the entry's command).
EXPOSE 8000
ENTRYPOINT ["node", "/app/guard.mjs"]
