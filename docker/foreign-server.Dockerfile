# A foreign inference server (MLServer, Triton) behind modeldock's guard: the images the
# built-in `mlserver` and `triton` serving runtimes run on Docker (docs/runtimes.md).
# Built offline by src/runtime/docker/image-builder.ts (`npm run images`): PYTHON_BASE is
# the host's Python with the server's packages taken from a venv of the tests (built
# once per set of package versions), NODE_BASE the worker's base (Node.js for the
# guard), app/ the guard; LIBRARY_PATH where the server's shared libraries are.
ARG PYTHON_BASE
ARG NODE_BASE=node:20-bookworm-slim
FROM ${NODE_BASE} AS node
FROM ${PYTHON_BASE}
ARG LIBRARY_PATH=
COPY --from=node / /
COPY app/ /app/
# /tmp writable by every user (mode 1777): the container's tmpfs /tmp takes this mode.
COPY tmp-mode/ /
ENV PATH=/usr/local/bin:/usr/bin:/bin \
    NODE_ENV=production \
    PYTHONPATH=/opt/python/site-packages \
    PYTHONDONTWRITEBYTECODE=1 \
    LD_LIBRARY_PATH=${LIBRARY_PATH} \
    HOME=/tmp
# Non-root, numeric so it works on a base without /etc/passwd.
USER 10001:10001
WORKDIR /tmp
# The guard listens on 8000 (MODELDOCK_GUARD_PORT) and starts the server it is given
# (`-- <command> <args>`: the runtime passes the entry's command).
EXPOSE 8000
ENTRYPOINT ["node", "/app/guard.mjs"]
