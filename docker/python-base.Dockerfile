# A Python installation made from the host's (image-builder.ts stages rootfs/: the
# interpreter and its standard library at their own paths, the shared libraries they
# load, and the packages of one image under /opt/python/site-packages). No registry.
FROM scratch
COPY rootfs/ /
