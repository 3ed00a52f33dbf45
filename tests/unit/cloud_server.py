"""A moto server on loopback for the cloud tests, and the stand-ins where moto 5 stops short.

The tests talk to AWS over real HTTP: a ``moto`` server (its own WSGI app, werkzeug's
threaded server) on 127.0.0.1, reached in-process through ``AWS_ENDPOINT_URL`` and by the
``eikit`` command line run as a subprocess. moto 5 implements SageMaker models, endpoint
configs, endpoints and notebook instances, Application Auto Scaling, CloudWatch alarms,
ECR, S3, STS and InvokeEndpoint (with canned answers). It lacks, and the server gets here,
at the operation seam (methods added to moto's own response classes, written against
moto's records):

- UpdateEndpoint, with SageMaker's blue/green deployment: the green fleet is created,
  traffic shifted (all at once, canary or linear, ``DeploymentConfig``), each shift
  followed by a baking period in which an alarm of ``AutoRollbackConfiguration`` in state
  ALARM shifts traffic back to the old fleet; Inf1 endpoints shift all at once (AWS's
  exclusion). Each phase lasts ``polls`` DescribeEndpoint calls (moto changes state at
  once) and shows in ``PendingDeploymentSummary``. The refusals AWS documents: an endpoint
  not InService, a variant with autoscaling whose instance type would change. And the one
  AWS makes now, with text of our own: a config with an EI accelerator is refused
  (``ei_refused``), since Elastic Inference is no longer available.
- ShadowProductionVariants, which moto's CreateEndpointConfig drops.
- InvokeEndpoint answers: moto's are canned (and it decodes every body as UTF-8, so binary
  bodies such as NPY fail); here each image is a "fleet", a function the test gives, and
  requests go to the old or the new fleet by the traffic share.
- ListServiceQuotas for SageMaker (moto has VPC quotas only), from ``quotas``.
- UpdateNotebookInstance, and the Stopping / Pending / Updating states of notebooks.
- The instance types an endpoint config takes: moto's list is years old (no ml.inf2.*,
  ml.trn1.*); here it is botocore's ``ProductionVariantInstanceType``, the service's own.
- What SageMaker Neo does behind a CompilationJob (moto marks each COMPLETED at once and
  compiles nothing): ``neo``, a function the test gives (tests/neuron_neo.py's
  ``NeoService.describe``), sees each DescribeCompilationJob answer and returns the service's.

Requests are recorded by operation, S3's REST calls too (``PutObject``, ``GetObject``...).

``Hold`` stops the N-th request that changes something (before or after moto applies it)
until the test has killed the client: the interrupt-at-every-step tests. A test's account,
clients and the EI user's endpoint are in tests/unit/cloud_account.py.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

pytest.importorskip("boto3")
pytest.importorskip("moto")
pytest.importorskip("flask", reason="the moto server needs moto[server]")

from moto.core.responses import BaseResponse  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    create_backend_app,
)

try:  # moto 5.1+; the moto that installs on Python 3.8 (5.0) serves with werkzeug's own
    from moto.moto_server.werkzeug_app import MotoRequestHandler
except ImportError:  # pragma: no cover - depends on the moto version
    from werkzeug.serving import WSGIRequestHandler as MotoRequestHandler
from moto.sagemaker.exceptions import ValidationError  # noqa: E402
from moto.sagemaker.responses import SageMakerResponse  # noqa: E402
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse  # noqa: E402
from moto.servicequotas.responses import ServiceQuotasResponse  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = "arn:aws:iam::%s:role/SageMakerRole" % ACCOUNT
REGISTRY = "%s.dkr.ecr.%s.amazonaws.com/eikit" % (ACCOUNT, REGION)
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
BUCKET = "models-bucket"
EI_REFUSAL = "Elastic Inference is no longer available; remove AcceleratorType (stand-in text)"

Fleet = Callable[[bytes, str, Optional[str]], Tuple[bytes, str]]


def _refuse(message: str) -> ValidationError:
    return ValidationError(message=message)


@dataclass
class Deployment:
    """An UpdateEndpoint SageMaker is working on."""

    old_config: str
    new_config: str
    phases: List[Tuple[str, float]]  # (variant status, share of traffic on the new fleet)
    alarms: List[str]
    outcome: str  # ok | back (the new fleet fails, traffic stays) | failed (endpoint Failed)
    polls: int
    started: datetime
    index: int = 0
    left: int = 0
    phase_started: List[datetime] = field(default_factory=list)


@dataclass
class Hold:
    """Stop the ``nth`` changing request; ``after``: once moto has applied it."""

    nth: int
    after: bool
    count: int = 0
    operation: str = ""
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


MUTATING = re.compile(r"^(Create|Update|Delete|Put|Register|Deregister|Set|Stop|Start)")


class StandIn:
    """What the added operations share; reset for every test."""

    def __init__(self) -> None:
        self.reset()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    def reset(self) -> None:
        self.polls = 2
        self.refuse_updates = 0
        self.update_outcomes: List[str] = []
        self.ei_refused = True
        self.quotas: Optional[Dict[str, float]] = {}
        self.fleets: Dict[str, Fleet] = {}
        self.deployments: Dict[str, Deployment] = {}
        self.shadows: Dict[str, List[Dict[str, Any]]] = {}
        self.notebook_pending: Dict[str, List[str]] = {}
        self.failures: Dict[str, str] = {}  # endpoint -> FailureReason, Failed at next describe
        self.calls: List[str] = []
        self.neo: Optional[Callable[[Dict[str, Any]], Dict[str, Any]]] = None
        self.hold: Optional[Hold] = None
        self.routed = itertools.count()
        self.lock = threading.Lock()

    @staticmethod
    def backend() -> Any:
        from moto.sagemaker.models import sagemaker_backends

        return sagemaker_backends[ACCOUNT][REGION]

    @staticmethod
    def alarm_state(name: str) -> Optional[str]:
        from moto.cloudwatch.models import cloudwatch_backends

        alarm = cloudwatch_backends[ACCOUNT][REGION].alarms.get(name)
        return alarm.state_value if alarm else None

    # --- endpoints ---------------------------------------------------------------------

    def update_endpoint(self, params: Dict[str, Any]) -> Dict[str, Any]:
        backend = self.backend()
        name, config_name = params["EndpointName"], params["EndpointConfigName"]
        endpoint = backend.endpoints.get(name)
        if endpoint is None:
            raise _refuse("Could not find endpoint %s." % name)
        if endpoint.endpoint_status != "InService":
            raise _refuse("Cannot update in-progress endpoint %s." % name)
        config = backend.endpoint_configs.get(config_name)
        if config is None:
            raise _refuse("Could not find endpoint configuration %s." % config_name)
        old = backend.endpoint_configs[endpoint.endpoint_config_name]
        old_types = {v["VariantName"]: v["InstanceType"] for v in old.production_variants}
        changed = [
            "endpoint/%s/variant/%s" % (name, v["VariantName"])
            for v in config.production_variants
            if old_types.get(v["VariantName"]) not in (None, v["InstanceType"])
        ]
        scaled = _scaled(changed)
        if scaled:
            raise _refuse(
                "The variant(s) %s include automatic scaling; deregister the scalable target "
                "before changing the instance type" % scaled
            )
        if self.ei_refused and any(v.get("AcceleratorType") for v in config.production_variants):
            raise _refuse(EI_REFUSAL)
        if self.refuse_updates:
            self.refuse_updates -= 1
            raise _refuse("Instance type not available (stand-in refusal)")
        types = [v["InstanceType"] for v in old.production_variants + config.production_variants]
        deployment = params.get("DeploymentConfig") or {}
        if any(t.startswith("ml.inf1.") for t in types):
            deployment = {}  # AWS's exclusion: all at once, no baking, no auto-rollback
        now = datetime.now(timezone.utc)
        phases = _phases(deployment)
        alarms = [
            a["AlarmName"]
            for a in (deployment.get("AutoRollbackConfiguration") or {}).get("Alarms", [])
        ]
        outcome = self.update_outcomes.pop(0) if self.update_outcomes else "ok"
        self.deployments[name] = Deployment(
            endpoint.endpoint_config_name, config_name, phases, alarms, outcome, self.polls, now,
            left=self.polls, phase_started=[now],
        )  # fmt: skip
        endpoint.endpoint_status = "Updating"
        endpoint.failure_reason = None
        return {"EndpointArn": endpoint.arn}

    def advance(self, name: str) -> Optional[Deployment]:
        """One DescribeEndpoint's worth of progress; the deployment still under way."""
        deployment = self.deployments.get(name)
        if deployment is None:
            return None
        tripped = [a for a in deployment.alarms if self.alarm_state(a) == "ALARM"]
        if tripped and deployment.index > 0:
            self._end(name, "back", "Rolled back: alarm %s is in ALARM (stand-in)" % tripped[0])
            return None
        deployment.left -= 1
        if deployment.left >= 0:
            return deployment
        if deployment.index == 0 and deployment.outcome != "ok":
            self._end(name, deployment.outcome, "The primary container did not pass the ping check")
            return None
        deployment.index += 1
        deployment.left = deployment.polls - 1  # this describe shows the new phase
        deployment.phase_started.append(datetime.now(timezone.utc))
        if deployment.index >= len(deployment.phases):
            self._end(name, "ok", "")
            return None
        return deployment

    def _end(self, name: str, outcome: str, reason: str) -> None:
        deployment = self.deployments.pop(name)
        backend = self.backend()
        endpoint = backend.endpoints[name]
        if outcome == "ok":
            config = backend.endpoint_configs[deployment.new_config]
            endpoint.endpoint_config_name = deployment.new_config
            endpoint.production_variants = endpoint._process_production_variants(
                config.production_variants
            )
            endpoint.endpoint_status = "InService"
            endpoint.failure_reason = None
        else:
            endpoint.endpoint_status = "InService" if outcome == "back" else "Failed"
            endpoint.failure_reason = reason

    def pending(self, deployment: Deployment) -> Dict[str, Any]:
        config = self.backend().endpoint_configs[deployment.new_config]
        status = deployment.phases[deployment.index][0]
        return {
            "EndpointConfigName": deployment.new_config,
            "StartTime": deployment.started,
            "ProductionVariants": [
                {
                    "VariantName": v["VariantName"],
                    "InstanceType": v["InstanceType"],
                    "DesiredInstanceCount": v.get("InitialInstanceCount", 1),
                    "DesiredWeight": v.get("InitialVariantWeight", 1.0),
                    "VariantStatus": [
                        {"Status": status, "StartTime": deployment.phase_started[-1]}
                    ],
                }
                for v in config.production_variants
            ],
        }

    # --- invocations ---------------------------------------------------------------------

    def answer(self, name: str, body: bytes, content_type: str, accept: Optional[str]) -> Any:
        backend = self.backend()
        endpoint = backend.endpoints.get(name)
        if endpoint is None:
            raise _refuse("Endpoint %s of account %s not found." % (name, ACCOUNT))
        config_name = endpoint.endpoint_config_name
        deployment = self.deployments.get(name)
        if deployment is not None:
            share = deployment.phases[deployment.index][1]
            turn = next(self.routed)
            if int((turn + 1) * share) > int(turn * share):  # `share` of the requests
                config_name = deployment.new_config
        variant = backend.endpoint_configs[config_name].production_variants[0]
        image = backend._models[variant["ModelName"]].primary_container["Image"]
        fleet = self.fleets.get(image)
        if fleet is None:
            return None
        return fleet(body, content_type, accept)

    # --- notebook instances --------------------------------------------------------------

    def notebook(self, name: str) -> Any:
        notebook = self.backend().notebook_instances.get(name)
        if notebook is None:
            raise _refuse("RecordNotFound")
        return notebook

    def set_notebook_status(self, name: str, status: str, then: Optional[List[str]] = None) -> None:
        self.notebook(name).status = status
        if then:
            self.notebook_pending[name] = list(then)


def _scaled(resource_ids: List[str]) -> List[str]:
    from moto.applicationautoscaling.models import applicationautoscaling_backends

    targets = applicationautoscaling_backends[ACCOUNT][REGION].targets.get(DIMENSION, {})
    return [rid for rid in resource_ids if rid in targets]


def _phases(deployment: Dict[str, Any]) -> List[Tuple[str, float]]:
    """The stages of a blue/green deployment, from ``DeploymentConfig``."""
    phases = [("Creating", 0.0)]
    policy = deployment.get("BlueGreenUpdatePolicy")
    if not policy:
        return phases + [("ActivatingTraffic", 1.0)]
    routing = policy["TrafficRoutingConfiguration"]
    kind = routing["Type"]
    if kind == "CANARY":
        share = routing["CanarySize"]["Value"] / 100.0
        phases += [("ActivatingTraffic", share), ("Baking", share)]
    elif kind == "LINEAR":
        step = routing["LinearStepSize"]["Value"] / 100.0
        share = step
        while share < 1.0:
            phases += [("ActivatingTraffic", share), ("Baking", share)]
            share = round(share + step, 6)
    phases += [("ActivatingTraffic", 1.0), ("Baking", 1.0)]  # the last shift, final baking
    return phases


STAND_IN = StandIn()


# --- the methods added to moto's response classes --------------------------------------


def _update_endpoint(self: Any) -> str:
    params = json.loads(self.body)
    return json.dumps(STAND_IN.update_endpoint(params))


def _describe_endpoint(self: Any) -> str:
    name = self._get_param("EndpointName")
    with STAND_IN.lock:
        endpoint = STAND_IN.backend().endpoints.get(name)
        if endpoint is not None and name in STAND_IN.failures:  # moto's endpoints never fail
            endpoint.endpoint_status = "Failed"
            endpoint.failure_reason = STAND_IN.failures.pop(name)
        deployment = STAND_IN.advance(name)
        described = self.sagemaker_backend.describe_endpoint(name)
        if deployment is not None:
            described["PendingDeploymentSummary"] = STAND_IN.pending(deployment)
    return json.dumps(described, default=_when)


def _when(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(type(value))


_original: Dict[str, Any] = {}


def _create_endpoint_config(self: Any) -> Any:
    params = json.loads(self.body)
    if params.get("ShadowProductionVariants"):
        STAND_IN.shadows[params["EndpointConfigName"]] = params["ShadowProductionVariants"]
    return _original["create_endpoint_config"](self)


def _describe_endpoint_config(self: Any) -> str:
    name = self._get_param("EndpointConfigName")
    described = self.sagemaker_backend.describe_endpoint_config(name)
    if name in STAND_IN.shadows:
        described["ShadowProductionVariants"] = STAND_IN.shadows[name]
    return json.dumps(described, default=_when)


def _invoke_endpoint(self: Any) -> Any:
    # from the path: moto 5.0 (Python 3.8's) reads _get_param from the body, a sample here
    name = self.uri.split("/endpoints/")[1].split("/")[0]
    body = self.body if isinstance(self.body, bytes) else self.body.encode()
    answer = STAND_IN.answer(
        name, body, self.headers.get("Content-Type", ""), self.headers.get("Accept")
    )
    if answer is None:
        error = {"Message": "no fleet answers for this image (stand-in)", "OriginalStatusCode": 500}
        return 424, {"x-amzn-ErrorType": "ModelError"}, json.dumps(error)
    payload, content_type = answer
    return 200, {"Content-Type": content_type, "x-Amzn-Invoked-Production-Variant": "v1"}, payload


def _runtime_setup_class(self: Any, request: Any, full_url: str, headers: Any, *args: Any) -> None:
    """moto decodes every request body as UTF-8: NPY and other binary bodies fail."""
    BaseResponse.setup_class(self, request, full_url, headers, True)


def _list_service_quotas(self: Any) -> str:
    if self._get_param("ServiceCode") != "sagemaker" or STAND_IN.quotas is None:
        return json.dumps({"Quotas": []})
    quotas = [
        {
            "ServiceCode": "sagemaker",
            "QuotaName": name,
            "QuotaCode": "L-%08X" % (abs(hash(name)) % 0xFFFFFFFF),
            "Value": value,
        }
        for name, value in sorted(STAND_IN.quotas.items())
    ]
    return json.dumps({"Quotas": quotas})


def _describe_compilation_job(self: Any) -> str:
    name = self._get_param("CompilationJobName")
    described = self.sagemaker_backend.describe_compilation_job(name)
    if STAND_IN.neo is not None:
        described = STAND_IN.neo(described)
    return json.dumps(described, default=_when)


def _stop_notebook_instance(self: Any) -> str:
    name = self._get_param("NotebookInstanceName")
    notebook = STAND_IN.notebook(name)
    if notebook.status != "InService":
        raise _refuse("Status (%s) not in ([InService])" % notebook.status)
    notebook.status = "Stopping"
    STAND_IN.notebook_pending[name] = ["Stopping"] * STAND_IN.polls + ["Stopped"]
    return "{}"


def _start_notebook_instance(self: Any) -> str:
    name = self._get_param("NotebookInstanceName")
    notebook = STAND_IN.notebook(name)
    if notebook.status != "Stopped":
        raise _refuse("Status (%s) not in ([Stopped])" % notebook.status)
    notebook.status = "Pending"
    STAND_IN.notebook_pending[name] = ["Pending"] * STAND_IN.polls + ["InService"]
    return "{}"


def _update_notebook_instance(self: Any) -> str:
    params = json.loads(self.body)
    name = params["NotebookInstanceName"]
    notebook = STAND_IN.notebook(name)
    if notebook.status != "Stopped":
        raise _refuse("Status (%s) not in ([Stopped])" % notebook.status)
    if params.get("InstanceType"):
        notebook.instance_type = params["InstanceType"]
    if params.get("DisassociateAcceleratorTypes"):
        notebook.accelerator_types = None
    notebook.status = "Updating"
    STAND_IN.notebook_pending[name] = ["Updating"] * STAND_IN.polls + ["Stopped"]
    return "{}"


def _describe_notebook_instance(self: Any) -> str:
    name = self._get_param("NotebookInstanceName")
    queue = STAND_IN.notebook_pending.get(name)
    notebook = STAND_IN.notebook(name)
    if queue:
        notebook.status = queue.pop(0)
    described = notebook.to_dict()
    if not described.get("AcceleratorTypes"):
        described.pop("AcceleratorTypes", None)
    return json.dumps(described, default=_when)


ADDED = {
    SageMakerResponse: {
        "update_endpoint": _update_endpoint,
        "describe_endpoint": _describe_endpoint,
        "create_endpoint_config": _create_endpoint_config,
        "describe_endpoint_config": _describe_endpoint_config,
        "stop_notebook_instance": _stop_notebook_instance,
        "start_notebook_instance": _start_notebook_instance,
        "update_notebook_instance": _update_notebook_instance,
        "describe_notebook_instance": _describe_notebook_instance,
        "describe_compilation_job": _describe_compilation_job,
    },
    SageMakerRuntimeResponse: {
        "invoke_endpoint": _invoke_endpoint,
        "setup_class": _runtime_setup_class,
    },
    ServiceQuotasResponse: {"list_service_quotas": _list_service_quotas},
}


def _validate_instance_type(self: Any, instance_type: str) -> None:
    """As the service validates it: botocore's enum, not moto's older copy."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    valid = model.shape_for("ProductionVariantInstanceType").enum
    if instance_type not in valid:
        raise _refuse(
            "Value '%s' at 'instanceType' failed to satisfy constraint: Member must satisfy "
            "enum value set" % instance_type
        )


def _install() -> None:
    from moto.sagemaker.models import FakeEndpointConfig

    _original["create_endpoint_config"] = SageMakerResponse.create_endpoint_config
    for cls, methods in ADDED.items():
        for name, method in methods.items():
            setattr(cls, name, method)
    FakeEndpointConfig.validate_instance_type = _validate_instance_type  # type: ignore[method-assign]


# --- the server --------------------------------------------------------------------------


def _operation(environ: Dict[str, Any]) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    path = environ.get("PATH_INFO", "")
    if "/operation/" in path:  # CloudWatch's smithy-rpc-v2-cbor
        return path.rsplit("/", 1)[-1]
    if path.endswith("/invocations"):
        return "InvokeEndpoint"
    method = environ.get("REQUEST_METHOD", "")
    if "/s3/aws4_request" in environ.get("HTTP_AUTHORIZATION", ""):
        return _s3_operation(method, path, environ.get("QUERY_STRING", ""))
    return "%s %s" % (method, path)


def _s3_operation(method: str, path: str, query: str) -> str:
    """S3's REST calls (path style), named as boto3 names them."""
    if not path.strip("/"):
        return "ListBuckets"
    has_key = "/" in path.strip("/")
    if "uploadId" in query:
        return {"PUT": "UploadPart", "POST": "CompleteMultipartUpload"}.get(
            method, "AbortMultipartUpload"
        )
    if "uploads" in query:
        return "CreateMultipartUpload"
    if not has_key:
        bucket = {"PUT": "CreateBucket", "DELETE": "DeleteBucket", "HEAD": "HeadBucket"}
        return bucket.get(method, "ListObjectsV2" if "list-type=2" in query else "ListObjects")
    return {"PUT": "PutObject", "GET": "GetObject", "HEAD": "HeadObject"}.get(
        method, "DeleteObject"
    )


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Server:
    """moto's WSGI app on 127.0.0.1, behind a recorder (and the ``Hold``)."""

    def __init__(self) -> None:
        _install()
        self.app = DomainDispatcherApplication(create_backend_app)
        self.server = make_server(
            "127.0.0.1", 0, self.wsgi, threaded=True, request_handler=_QuietHandler
        )
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wsgi(self, environ: Dict[str, Any], start_response: Any) -> Any:
        op = _operation(environ)
        stand_in = STAND_IN
        stand_in.calls.append(snake(op) if " " not in op else op)
        hold = stand_in.hold
        if hold is not None and MUTATING.match(op):
            with stand_in.lock:
                hold.count += 1
                mine = hold.count == hold.nth
            if mine:
                hold.operation = op
                if hold.after:
                    for _ in self.app(environ, lambda *a, **k: None):
                        pass
                hold.reached.set()
                hold.release.wait(120)
                start_response("503 Service Unavailable", [("Content-Length", "0")])
                return [b""]
        return self.app(environ, start_response)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    def reset(self) -> None:
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()
        STAND_IN.reset()


class _QuietHandler(MotoRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log_error(self, *args: Any) -> None:
        pass


