"""A migration to Inferentia: what the plan does with each model's archive.

For every model moved to ``ml.inf1.*`` or ``ml.inf2.*``/``ml.trn1.*`` the plan reads its
archive in S3 (``eikit.cloud.neuron_archive``) and:

- compiled for that generation: used as it is;
- a compiled archive beside it, of the same model file: used, by a new model;
- with ``--compile``: the compile step, first, before anything on the endpoint changes,
  compiles it (in-process, with Docker or with SageMaker Neo) and uploads it beside the old
  one, which is never changed; the new model uses it;
- else refused: an uncompiled model on Inferentia serves on the instance's CPU and leaves
  the NeuronCores it pays for unused. ``--allow-uncompiled`` deploys it anyway, warned.

An archive eikit cannot read (permissions) is a warning, not a refusal.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from eikit.accelerators import module_installed
from eikit.cloud.aws import Clients, CloudError
from eikit.cloud.images import framework_of
from eikit.cloud.neuron_archive import ArchiveState, compile_by_hand, read_archive
from eikit.cloud.preflight import Finding
from eikit.compile.command import EXAMPLE_PLACEHOLDER
from eikit.compile.docker import default_image
from eikit.compile.example import from_file, from_shapes
from eikit.compile.neo import split_s3
from eikit.compile.s3 import beside
from eikit.errors import ConfigurationError
from eikit.neuron.advice import target_notes
from eikit.neuron.facts import GENERATIONS, NEO_TARGETS

WHERE = ("auto", "in-process", "docker", "neo")


@dataclass
class CompileOptions:
    """``--compile`` and how: where, the example it traces with, batch sizes."""

    where: str = "auto"  # auto: in-process where the Neuron package is installed, else docker
    example: Optional[str] = None  # one request body saved to a file
    shapes: List[str] = field(default_factory=list)  # or input shapes, batch first
    dtypes: List[str] = field(default_factory=list)
    batch_sizes: Optional[List[int]] = None  # None: the example's own batch
    image: Optional[str] = None  # docker: default eikit:<the generation's tag>
    neo_s3: Optional[str] = None  # neo: default beside the model, <folder>/eikit-neo
    neo_role: Optional[str] = None  # neo: default the model's execution role


def describe_where(where: str, generation: str, framework: str, image: Optional[str]) -> str:
    module = GENERATIONS[generation].module
    why = ""
    if where == "auto":
        where = "in-process" if module_installed(module) else "docker"
        why = " (%s is %sinstalled here)" % (module, "" if where == "in-process" else "not ")
    if where == "docker":
        return "with Docker in %s%s" % (image or default_image(framework, generation), why)
    if where == "neo":
        return "with SageMaker Neo (target %s)" % NEO_TARGETS[generation]
    return "in-process" + why


class NeuronPlan:
    """Checks each model's archive on a Neuron target; one per plan."""

    def __init__(
        self,
        clients: Clients,
        endpoint: str,
        instance_type: str,
        generation: str,
        compile_options: Optional[CompileOptions],
        allow_uncompiled: bool,
        samples: Optional[str] = None,
        content_type: Optional[str] = None,
    ) -> None:
        self.clients = clients
        self.endpoint = endpoint
        self.instance_type = instance_type
        self.generation = generation
        self.options = compile_options
        self.allow_uncompiled = allow_uncompiled
        self.samples = samples
        self.content_type = content_type
        self.notes: List[str] = []
        self.warnings: List[str] = []
        self.findings: List[Finding] = []
        self.jobs: List[Dict[str, Any]] = []
        self._frameworks: List[Optional[str]] = []

    def data_url(
        self, model: Dict[str, Any], container: Dict[str, Any], image: str
    ) -> Optional[str]:
        """The archive the new model uses instead of the old one's (None: the same)."""
        name = model["ModelName"]
        framework = framework_of(image)
        self._target_notes(framework)
        url = container.get("ModelDataUrl") or ""
        if container.get("ModelDataSource") or container.get("Mode") == "MultiModel":
            url = ""  # a prefix or several models: not one archive
        state = read_archive(self.clients.s3, url or "(ModelDataSource)", self.generation)
        if state.broken:
            self.findings.append(Finding("neuron", "model %s: %s" % (name, state.broken)))
            return None
        if state.missing:
            return None  # preflight's model-data check says so, with the fix
        if state.unreadable:
            self._unreadable(name, state)
            return None
        if state.compiled:
            self.notes.append(
                "model %s: %s is compiled for %s (eikit-neuron.json)" % (name, url, self.generation)
            )
            return None
        if state.beside:
            self.notes.append(
                "model %s: %s is %s, but %s beside it is compiled for %s from the same model "
                "file: the new model uses that"
                % (name, url, state.what(), state.beside, self.generation)
            )
            return state.beside
        if self.options is not None:
            return self._job(model, state, framework)
        if self.allow_uncompiled:
            self.warnings.append(
                "model %s: %s (--allow-uncompiled). To compile it: %s"
                % (name, state.on_cpu(self.instance_type), self._commands(url))
            )
            return None
        self.findings.append(
            Finding(
                "neuron",
                "model %s: %s" % (name, state.on_cpu(self.instance_type)),
                self._commands(url) + "; or --allow-uncompiled to serve it on the CPU anyway",
            )
        )
        return None

    def _target_notes(self, framework: Optional[str]) -> None:
        if framework in self._frameworks:
            return
        self._frameworks.append(framework)
        if framework is None:
            gen = GENERATIONS[self.generation]
            self.notes.append(
                "%s is %s (NeuronCore %s): the model runs on the NeuronCores only once it is "
                "compiled for %s" % (self.instance_type, gen.name, gen.neuron_core, gen.name)
            )
            return
        with contextlib.suppress(ValueError):  # no Neuron facts for this framework
            self.notes += target_notes(self.instance_type, framework)

    def _unreadable(self, name: str, state: ArchiveState) -> None:
        text = (
            "model %s: %s: %s, so eikit cannot tell whether it is compiled for %s; it runs "
            "on the NeuronCores only if it is"
            % (name, state.url, state.unreadable, self.generation)
        )
        if self.options is None:
            self.warnings.append(text)
            return
        self.findings.append(
            Finding(
                "neuron",
                text,
                "--compile takes one model.tar.gz in ModelDataUrl that eikit can read; or "
                "compile it yourself (eikit compile) and point the model at the result",
            )
        )

    def _commands(self, url: str) -> str:
        """The exact ways to compile ``url`` for this migration."""
        given = " --samples %s" % self.samples if self.samples else ""
        example = "" if self.samples else " --example " + EXAMPLE_PLACEHOLDER
        migrate = "eikit migrate endpoint %s --instance-type %s%s --compile%s" % (
            self.endpoint, self.instance_type, given, example,
        )  # fmt: skip
        which = (
            "the first of --samples is the example"
            if self.samples
            else "%s: one request body saved to a file, or --shape 1x3x224x224"
            % EXAMPLE_PLACEHOLDER
        )
        return (
            "run it again with --compile: `%s` (%s; --neo compiles with SageMaker Neo), or "
            "compile it by hand and plan again (the compiled archive beside it is found): `%s`"
            % (migrate, which, compile_by_hand(url, self.generation, self._first_sample()))
        )

    def _first_sample(self) -> Optional[str]:
        """The first of ``--samples`` (what --compile takes as the example), if any."""
        if not self.samples:
            return None
        folder = Path(self.samples)
        if not folder.is_dir():
            return str(folder) if folder.is_file() else None
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        return str(files[0]) if files else None

    def _job(
        self, model: Dict[str, Any], state: ArchiveState, framework: Optional[str]
    ) -> Optional[str]:
        name, url = model["ModelName"], state.url
        assert state.scan is not None
        if framework not in (None, "pytorch"):
            self.findings.append(
                Finding(
                    "neuron",
                    "model %s: %s is %s, and eikit compile traces PyTorch models only (this "
                    "one is %s)" % (name, url, state.what(), framework),
                    "compile it with %s's own Neuron package or SageMaker Neo, upload it and "
                    "point the model at it" % framework,
                )
            )
            return None
        target = beside(url, self.generation)
        self.jobs.append(
            {
                "model": name,
                "source": url,
                "source_etag": state.scan.etag,
                "source_sha256": state.scan.model_sha256,
                "target": target,
                "generation": self.generation,
                "framework": framework or "pytorch",
                "role": model.get("ExecutionRoleArn"),
            }
        )
        self.notes.append(
            "model %s: %s is %s: the compile step compiles it for %s and uploads %s beside it; "
            "the new model uses that (the old archive is not changed)"
            % (name, url, state.what(), self.generation, target)
        )
        return target

    # --- the state's "compile" ---------------------------------------------------------

    def state(self) -> Optional[Dict[str, Any]]:
        """What the compile step needs, or None when nothing is compiled."""
        if not self.jobs or self.options is None:
            return None
        o = self.options
        if o.where not in WHERE:
            raise CloudError("compile: where is one of %s" % ", ".join(WHERE))
        example = self._example()
        neo = self._neo() if o.where == "neo" else None
        how = describe_where(o.where, self.generation, self.jobs[0]["framework"], o.image)
        sizes = (
            ",".join(map(str, o.batch_sizes))
            if o.batch_sizes
            else "the example's own (larger requests are split; --batch-sizes 1,4,8 compiles more)"
        )
        self.notes.append(
            "compile: %s, example %s, batch sizes %s%s"
            % (
                how,
                example.get("file") or " ".join("--shape %s" % s for s in example["shapes"]),
                sizes,
                "; Neo's input and output under %s, role %s" % (neo["s3"], neo["role"])
                if neo
                else "",
            )
        )
        return {
            "where": o.where,
            "example": example,
            "batch_sizes": o.batch_sizes,
            "image": o.image,
            "neo": neo,
            "jobs": self.jobs,
        }

    def _neo(self) -> Dict[str, str]:
        o = self.options
        assert o is not None
        bucket, key = split_s3(self.jobs[0]["source"])
        folder = "/".join(p for p in (key.rpartition("/")[0], "eikit-neo") if p)
        role = o.neo_role or self.jobs[0].get("role") or ""
        if not role:
            raise CloudError("--neo needs --neo-role ARN: the model has no execution role to use")
        return {"s3": o.neo_s3 or "s3://%s/%s" % (bucket, folder), "role": role}

    def _example(self) -> Dict[str, Any]:
        o = self.options
        assert o is not None
        try:
            if o.example:
                path = Path(o.example).resolve()
                from_file(path)
                return {"file": str(path), "content_type": None}
            if o.shapes:
                from_shapes(o.shapes, o.dtypes)
                return {"shapes": list(o.shapes), "dtypes": list(o.dtypes)}
            first = self._first_sample()
            if first:
                path = Path(first).resolve()
                from_file(path, self.content_type)
                return {"file": str(path), "content_type": self.content_type}
        except ConfigurationError as exc:
            raise CloudError(str(exc)) from None
        raise CloudError(
            "--compile needs an example request to trace the model with: --example FILE (one "
            "request body, .json .npy ...), --shape 1x3x224x224 [--dtype float32], or --samples"
        )
