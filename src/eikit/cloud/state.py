"""The migration state file: what was read, made and removed, and how far a run got.

Written (atomically: a temporary file, then a rename) when a run starts, after each step,
and before anything whose loss would leave a run unable to undo itself (the autoscaling a
rollback removes, the reason a run failed). A migration that was interrupted (Ctrl-C, a
lost shell, a timeout, a killed process) is finished (``eikit migrate resume``) or undone
(``eikit migrate rollback``) from it; since every step reads what is there before it acts,
a step that was under way is simply made again.

A plan lists the steps of ``FORWARD`` it makes; ``completed`` holds those done. A new step
is a name here, a ``step_NAME`` method of ``Migration`` and a place in ``plan._steps``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Optional

from eikit.cloud.aws import CloudError

VERSION = 2
FORWARD = (  # the steps a plan may hold, in order (a plan lists the ones it makes)
    "compile",  # model archives compiled for Neuron, uploaded beside the old ones (--compile)
    "create",  # new models and endpoint config
    "baseline",  # the old endpoint's answers recorded (with --samples)
    "guardrails",  # the auto-rollback alarms made
    "remove-scaling",  # autoscaling deregistered (recorded in "scaling")
    "update",  # UpdateEndpoint called, with the blue/green DeploymentConfig
    "wait",  # the endpoint is InService on the new config
    "restore-scaling",  # autoscaling on the new variants, alarms on the live policies
    "remove-guardrails",  # the auto-rollback alarms deleted
    "verify",  # the new endpoint's answers compared with the baseline
)
STEPS = ("planned",) + FORWARD + ("done", "rolling-back", "rolled-back")


def default_path(endpoint: str) -> Path:
    return Path("eikit-migrate-%s.json" % endpoint)


def now_iso(clock: Optional[float] = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if clock is None else clock))


class StateFile:
    """One migration's state, saved to ``path`` on every change."""

    def __init__(self, path: Path, data: Dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def new(cls, path: Path, data: Dict[str, Any]) -> StateFile:
        if path.exists():
            old = cls.load(path)
            if old.step not in ("done", "rolled-back"):
                raise CloudError(
                    "%s holds an unfinished migration of %s (step %s): finish it with `eikit "
                    "migrate resume --state %s` or undo it with `eikit migrate rollback "
                    "--state %s`" % (path, old.data.get("endpoint"), old.step, path, path)
                )
        state = cls(path, dict(data, version=VERSION, history=[], completed=[]))
        state.advance("planned", "plan written")
        return state

    @classmethod
    def load(cls, path: Path) -> StateFile:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise CloudError("no migration state file %s" % path) from None
        except ValueError as exc:
            raise CloudError("%s is not a migration state file: %s" % (path, exc)) from None
        if data.get("kind") == "endpoint-migration" and data.get("version") != VERSION:
            raise CloudError(
                "%s was written by another eikit version (state version %s, this one reads %d): "
                "finish it with that version" % (path, data.get("version"), VERSION)
            )
        if data.get("version") != VERSION or data.get("step") not in STEPS:
            raise CloudError(
                "%s is not an eikit migration state file (version %d)" % (path, VERSION)
            )
        return cls(path, data)

    @property
    def step(self) -> str:
        return str(self.data.get("step"))

    def completed(self, step: str) -> bool:
        return step in self.data.get("completed", [])

    def advance(self, step: str, note: str = "") -> None:
        assert step in STEPS, step
        self.data["step"] = step
        if step in FORWARD and step not in self.data.setdefault("completed", []):
            self.data["completed"].append(step)
        self.data.setdefault("history", []).append({"at": now_iso(), "step": step, "note": note})
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(self.data, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(str(partial), str(self.path))
