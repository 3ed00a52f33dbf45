"""What ``eikit compile`` is asked to do: one request, shared by the ways it can run
(in-process, in Docker, with SageMaker Neo) and by the migration's compile step."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from eikit.compile.example import Example

WHERE = ("auto", "in-process", "docker", "neo")
Progress = Callable[[str], None]


def to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


@dataclass
class CompileRequest:
    source: Path  # a model folder or model.tar.gz
    generation: str  # "inf1", "inf2"
    example: Example
    batch_sizes: Optional[List[int]] = None  # None: the example's own batch
    output: Optional[Path] = None  # None: beside the source, <name>-<generation>.tar.gz
    in_place: bool = False  # source is a folder: compile into it, write no archive
    code_dir: Optional[Path] = None
    framework: Optional[str] = None
    where: str = "auto"
    image: Optional[str] = None  # docker: default eikit:<the generation's tag>
    docker_mounts: Dict[str, str] = field(default_factory=dict)  # host -> container, read-only
    docker_env: Dict[str, str] = field(default_factory=dict)  # more environment for it
    rtol: Optional[float] = None
    atol: Optional[float] = None
    compiler_args: List[str] = field(default_factory=list)
    split: bool = True  # check padding across chunks too (as the server splits)
    neo: Optional[Any] = None  # eikit.compile.neo.NeoOptions for where="neo"
    device_root: Path = Path("/dev")
    progress: Progress = to_stderr
