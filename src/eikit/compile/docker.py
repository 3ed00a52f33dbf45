"""Compile inside the generation's eikit image, which holds its Neuron package and compiler
(``eikit:pytorch-1.13-inf1-py310``, ``eikit:pytorch-2.9-inf2-py312``; ``eikit build``).

The model folder is mounted read-write and the container runs ``eikit compile --in-process
--in-place`` on it, as the caller's user, with no network: it writes the compiled graphs and
the manifest into the folder, and its log becomes progress lines.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

from eikit.errors import ConfigurationError
from eikit.images import matrix

if TYPE_CHECKING:
    from eikit.compile.request import CompileRequest

MODEL_MOUNT = "/eikit-compile/model"
SCRATCH_MOUNT = "/eikit-compile/scratch"


def default_image(framework: str, generation: str) -> str:
    return "%s:%s" % ("eikit", matrix.variant(framework, generation).tag)


def inner_command(
    request: CompileRequest, sizes: List[int], example_file: Optional[str]
) -> List[str]:
    """The ``eikit compile`` the container runs on the mounted folder."""
    words = ["eikit", "compile", MODEL_MOUNT, "--generation", request.generation]
    if example_file is not None:
        words += ["--example", "%s/%s" % (SCRATCH_MOUNT, example_file)]
        if request.example.content_type:
            words += ["--content-type", request.example.content_type]
    else:
        for array in request.example.arrays or []:
            words += ["--shape", "x".join(str(d) for d in array.shape), "--dtype", str(array.dtype)]
    words += ["--batch-sizes", ",".join(map(str, sizes)), "--in-process", "--in-place"]
    if request.framework:
        words += ["--framework", request.framework]
    if request.rtol is not None:
        words += ["--rtol", repr(request.rtol)]
    if request.atol is not None:
        words += ["--atol", repr(request.atol)]
    if not request.split:
        words.append("--no-split-check")
    for arg in request.compiler_args:
        words.append("--compiler-arg=%s" % arg)
    return words


def compile_in_docker(
    framework: str, tree: Path, request: CompileRequest, sizes: List[int], scratch: Path
) -> None:
    """Run the compile in the image; raises ConfigurationError with the log's tail when it
    fails. ``request.docker_mounts`` (read-only) and ``request.docker_env`` add to the
    container (a package cache, a proxy; tests mount stand-in packages)."""
    from docker.errors import DockerException, ImageNotFound

    from eikit.images.container import docker_client

    image = request.image or default_image(framework, request.generation)
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "home").mkdir(exist_ok=True)
    example_file = None
    if request.example.body is not None:
        example_file = "example.body"
        (scratch / example_file).write_bytes(request.example.body)
    client = docker_client()
    try:
        client.images.get(image)
    except ImageNotFound:
        raise ConfigurationError(
            "the image %s is not on this Docker engine: build it with `eikit build --framework "
            "%s --target %s` (or pass --image)" % (image, framework, request.generation)
        ) from None
    mounts = [
        {"Type": "bind", "Source": str(tree.resolve()), "Target": MODEL_MOUNT, "ReadOnly": False},
        {
            "Type": "bind",
            "Source": str(scratch.resolve()),
            "Target": SCRATCH_MOUNT,
            "ReadOnly": False,
        },
    ]
    for source, target in sorted(request.docker_mounts.items()):
        mounts.append({"Type": "bind", "Source": source, "Target": target, "ReadOnly": True})
    env = {"HOME": SCRATCH_MOUNT + "/home", "PYTHONUNBUFFERED": "1"}
    env.update(request.docker_env)
    command = inner_command(request, sizes, example_file)
    request.progress("docker: %s %s" % (image, " ".join(command)))
    try:
        container = client.api.create_container(
            image,
            command=command,
            environment=env,
            user="%d:%d" % (os.getuid(), os.getgid()),
            host_config=client.api.create_host_config(mounts=mounts, network_mode="none"),
        )
        ident = container["Id"]
        tail: List[str] = []
        try:
            client.api.start(ident)
            for chunk in client.api.logs(ident, stream=True, follow=True):
                for line in chunk.decode("utf-8", "replace").splitlines():
                    tail = (tail + [line])[-30:]
                    request.progress("  [container] " + line)
            status = int(client.api.wait(ident).get("StatusCode", 1))
        finally:
            client.api.remove_container(ident, force=True)
    except DockerException as exc:
        raise ConfigurationError("docker: %s" % exc) from exc
    if status != 0:
        raise ConfigurationError(
            "compiling in %s failed (exit %d):\n%s" % (image, status, "\n".join(tail))
        )
    shutil.rmtree(str(scratch / "home"), ignore_errors=True)
