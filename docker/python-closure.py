"""What the mlserver image needs of a Python installation, as JSON on stdout, read by
src/runtime/docker/image-builder.ts (run with the venv's python, which has the packages):

- the interpreter's real executable and its standard library (copied at the same paths,
  so the interpreter finds its library where it looks);
- the files of the named distributions and of everything they require, transitively
  (extras left out), as installed in the venv's site-packages;
- a digest of all of that's names and versions, which tags the image, so that it is
  built again only when something in it changes.

    python python-closure.py mlserver mlserver-sklearn scikit-learn
"""

import hashlib
import importlib.metadata as metadata
import json
import os
import sys
import sysconfig

from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name

# Parts of the standard library a model server never imports.
STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages", "dist-packages"}


def closure(roots):
    """The distributions `roots` need, with the extras each requirement names
    (`tritonclient[http]` brings what tritonclient's `http` extra requires)."""
    installed = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions()}
    seen, done = {}, set()
    stack = [(canonicalize_name(r), "") for r in roots]
    while stack:
        name, extra = stack.pop()
        if (name, extra) in done:
            continue
        done.add((name, extra))
        dist = installed.get(name)
        if dist is None:
            if name in roots:
                sys.exit(f"{name} is not installed in {sys.prefix}")
            continue
        seen[name] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
                continue
            if not requirement.marker and extra:
                continue  # already followed without the extra
            required = canonicalize_name(requirement.name)
            stack.append((required, ""))
            stack.extend((required, e) for e in requirement.extras)
    return seen


def main():
    site = os.path.realpath(sysconfig.get_paths()["purelib"])
    dists = closure(sys.argv[1:])
    files = []
    for dist in dists.values():
        for entry in dist.files or []:
            file = os.path.realpath(dist.locate_file(entry))
            if file.startswith(site + os.sep) and os.path.isfile(file):
                files.append(os.path.relpath(file, site))
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
    stdlib_files = []
    for root, dirs, names in os.walk(stdlib):
        if root == stdlib:
            dirs[:] = [d for d in dirs if d not in STDLIB_SKIP and not d.startswith("config-")]
        stdlib_files.extend(os.path.join(root, n) for n in names)
    executable = os.path.realpath(sys._base_executable if hasattr(sys, "_base_executable") else sys.executable)
    versions = sorted(f"{name}=={dist.version}" for name, dist in dists.items())
    digest = hashlib.sha256("\n".join([executable, sys.version, *versions]).encode()).hexdigest()
    # The interpreter's shared library, for programs that embed it (Triton's Python backend).
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    shared = sorted(
        os.path.join(libdir, name)
        for name in (os.listdir(libdir) if os.path.isdir(libdir) else [])
        if name.startswith("libpython3") and ".so" in name
    )
    json.dump(
        {
            "executable": executable,
            "sharedLibraries": shared,
            # The interpreter's own site-packages: an embedded interpreter (Triton's Python
            # backend stub) runs isolated, ignores PYTHONPATH and looks there only.
            "baseSitePackages": sysconfig.get_path(
                "purelib", vars={"base": sys.base_prefix, "platbase": sys.base_exec_prefix}
            ),
            "version": f"{sys.version_info.major}.{sys.version_info.minor}",
            "stdlibFiles": stdlib_files,
            "sitePackages": site,
            "files": sorted(set(files)),
            "distributions": versions,
            "digest": digest,
        },
        sys.stdout,
    )


main()
