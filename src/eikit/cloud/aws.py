"""The one seam to AWS: a client factory, error text, and a poll loop with a clock to inject.

Every command gets its clients from ``Clients``; tests build one over moto (or wrap a client
where moto lacks an API). Waiting never blocks on a fixed sleep: ``Waiter`` polls a describe
call, prints progress when the status changes (and every ``progress_every`` seconds), and
gives up at a deadline, with a clock and a sleep that tests replace.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Optional, TextIO


class CloudError(RuntimeError):
    """A refused or failed AWS step; the message says what to do next."""


class WaitTimeout(CloudError):
    """The resource did not reach the wanted state before the deadline."""

    def __init__(self, message: str, last: Dict[str, Any]) -> None:
        super().__init__(message)
        self.last = last


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def describe_error(exc: BaseException) -> str:
    """``Code: message`` for a botocore ClientError, else the exception as text."""
    response = getattr(exc, "response", None)
    if response and "Error" in response:
        err = response["Error"]
        return "%s: %s" % (err.get("Code", "?"), err.get("Message", ""))
    return "%s: %s" % (type(exc).__name__, exc)


def is_not_found(exc: BaseException) -> bool:
    """SageMaker says "Could not find ..." with a ValidationException for a missing resource;
    S3's HeadObject answers 404."""
    text, code = describe_error(exc), error_code(exc)
    return (
        "Could not find" in text
        or "RecordNotFound" in text
        or "NotFound" in code
        or code in ("404", "NoSuchKey")
    )


class Clients:
    """boto3 clients for one region and profile, made once each.

    ``session`` may be given (tests); otherwise a ``boto3.session.Session`` is made from
    ``profile`` and ``region`` (None: boto3's own chain, e.g. AWS_PROFILE, AWS_DEFAULT_REGION).
    ``overrides`` maps a service name to a ready client (or a stand-in wrapping one).
    """

    def __init__(
        self,
        region: Optional[str] = None,
        profile: Optional[str] = None,
        session: Any = None,
        overrides: Optional[Dict[str, Any]] = None,
    ) -> None:
        self._session = session
        self._profile = profile
        self._region = region
        self._made: Dict[str, Any] = dict(overrides or {})

    @property
    def session(self) -> Any:
        if self._session is None:
            try:
                import boto3
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise CloudError("boto3 is missing: pip install 'eikit[images]'") from exc
            self._session = boto3.session.Session(
                profile_name=self._profile, region_name=self._region
            )
        return self._session

    @property
    def region(self) -> str:
        region = self._region or self.session.region_name
        if not region:
            raise CloudError("no AWS region: pass --region or set AWS_DEFAULT_REGION")
        return str(region)

    def client(self, service: str) -> Any:
        if service not in self._made:
            self._made[service] = self.session.client(service, region_name=self.region)
        return self._made[service]

    @property
    def sagemaker(self) -> Any:
        return self.client("sagemaker")

    @property
    def autoscaling(self) -> Any:
        return self.client("application-autoscaling")

    @property
    def ecr(self) -> Any:
        return self.client("ecr")

    @property
    def cloudwatch(self) -> Any:
        return self.client("cloudwatch")

    @property
    def runtime(self) -> Any:
        return self.client("sagemaker-runtime")

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def quotas(self) -> Any:
        return self.client("service-quotas")

    def account(self) -> str:
        return str(self.client("sts").get_caller_identity()["Account"])


def monotonic() -> float:
    return time.monotonic()


@dataclass
class Waiter:
    """Poll ``describe()`` until ``status_of(answer)`` is in ``done``; raise on ``failed``.

    ``clock`` and ``sleep`` are the seams tests replace; ``out`` gets one progress line per
    status change and every ``progress_every`` seconds.
    """

    clock: Callable[[], float] = monotonic
    sleep: Callable[[float], None] = time.sleep
    interval: float = 15.0
    progress_every: float = 60.0
    out: Optional[TextIO] = None
    seen: list = field(default_factory=list)

    def wait(
        self,
        what: str,
        describe: Callable[[], Dict[str, Any]],
        status_of: Callable[[Dict[str, Any]], str],
        done: Iterable[str],
        failed: Iterable[str],
        timeout: float,
        waiting: Iterable[str] = (),
        each: Optional[Callable[[Dict[str, Any]], None]] = None,
    ) -> Dict[str, Any]:
        """The last answer once its status is in ``done`` or ``failed`` (the caller decides).

        A status outside ``waiting`` that is neither done nor failed ends the wait too, so an
        unexpected state is reported rather than waited on forever (``waiting`` empty: wait
        through any other status). Raises WaitTimeout past ``timeout`` seconds. ``each`` sees
        every answer (a migration checks parity while SageMaker bakes the new fleet).
        """
        done, failed, waiting = set(done), set(failed), set(waiting)
        start = self.clock()
        last_status = None
        last_print = start
        while True:
            answer = describe()
            status = status_of(answer)
            now = self.clock()
            self.seen.append(status)
            if status != last_status or now - last_print >= self.progress_every:
                self._say("[%s] %s: %s" % (_elapsed(now - start), what, status))
                last_status, last_print = status, now
            if each is not None:
                each(answer)
            if status in done or status in failed:
                return answer
            if waiting and status not in waiting:
                return answer
            if now - start >= timeout:
                raise WaitTimeout(
                    "%s is still %s after %s (timeout)" % (what, status, _elapsed(now - start)),
                    answer,
                )
            self.sleep(self.interval)

    def _say(self, line: str) -> None:
        stream = self.out or sys.stderr
        stream.write(line + "\n")
        stream.flush()


def _elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return "%d:%02d" % (seconds // 60, seconds % 60)


@dataclass
class Call:
    """One AWS call: what ``--dry-run`` prints and what a run makes, in order."""

    service: str
    operation: str
    params: Dict[str, Any]
    why: str = ""

    def show(self) -> str:
        import json

        body = json.dumps(self.params, indent=2, sort_keys=True, default=str)
        head = "%s.%s" % (self.service, self.operation)
        return "%s%s %s" % (head, "  # " + self.why if self.why else "", body)

    def run(self, clients: Clients) -> Any:
        return getattr(clients.client(self.service), self.operation)(**self.params)


NAME_LIMIT = 63  # SageMaker model, endpoint config and endpoint names


def resource_name(base: str, suffix: str) -> str:
    """``base-suffix`` cut to SageMaker's 63 characters, keeping the suffix whole."""
    room = NAME_LIMIT - len(suffix) - 1
    head = base[:room].rstrip("-")
    return "%s-%s" % (head, suffix)


def stamp(now: Optional[float] = None) -> str:
    """A UTC time stamp for new resource names: ``20240131-235959``."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
