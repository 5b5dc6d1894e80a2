# Local stand-in for node:20-bookworm-slim on machines that cannot pull images: the
# host's own Node.js binary and the shared libraries it and the native modules need,
# staged into rootfs/ by image-builder.ts.
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/usr/bin:/bin
