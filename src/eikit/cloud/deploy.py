"""``eikit deploy``: CreateModel, CreateEndpointConfig, Create- or UpdateEndpoint, wait,
then autoscaling (``--min/--max/--invocations-per-instance``) so a new endpoint does not
start without it.

The plan is a list of calls (``--dry-run`` prints it); a run makes them in order and waits
for ``InService``. A failed endpoint is reported with its ``FailureReason`` and the
CloudWatch log group its containers write to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, TextIO, Tuple

from eikit.cloud import scaling
from eikit.cloud.aws import (
    Call,
    Clients,
    CloudError,
    Waiter,
    WaitTimeout,
    describe_error,
    is_not_found,
    resource_name,
)
from eikit.cloud.images import check_target
from eikit.cloud.neuron_archive import deploy_check

VARIANT = "AllTraffic"  # the variant name the SageMaker SDK gives a single-model endpoint
EI_TYPES = tuple(
    "ml.%s.%s" % (gen, size) for gen in ("eia1", "eia2") for size in ("medium", "large", "xlarge")
)
_ROLE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
_ENDPOINT = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def log_group(endpoint: str) -> str:
    """Where SageMaker sends an endpoint's container logs."""
    return "/aws/sagemaker/Endpoints/%s" % endpoint


def failure_text(answer: Dict[str, Any], region: str) -> str:
    name = answer.get("EndpointName", "?")
    reason = answer.get("FailureReason") or "(SageMaker gave no FailureReason)"
    return (
        "endpoint %s is %s: %s\n  container logs: CloudWatch log group %s "
        "(aws logs tail %s --region %s)"
        % (name, answer.get("EndpointStatus"), reason, log_group(name), log_group(name), region)
    )


@dataclass
class DeployRequest:
    endpoint: str
    image: str
    model_data: str
    role: str
    instance_type: str
    accelerator_type: Optional[str] = None
    multi_model: bool = False
    env: Dict[str, str] = field(default_factory=dict)
    instance_count: int = 1
    name: Optional[str] = None  # model and endpoint-config name; default endpoint-STAMP
    autoscale: Optional[Tuple[int, int, float]] = None  # min, max, invocations per instance
    allow_uncompiled: bool = False  # Inferentia: serve a model not compiled for it on the CPU

    def check(self) -> None:
        if not _ENDPOINT.match(self.endpoint):
            raise CloudError(
                "endpoint name %r: 1-63 letters, digits and hyphens, not starting with a hyphen"
                % self.endpoint
            )
        if not self.model_data.startswith("s3://"):
            raise CloudError("--model-data must be an s3:// URI, not %r" % self.model_data)
        if self.multi_model and not self.model_data.endswith("/"):
            raise CloudError(
                "--multi-model serves every model.tar.gz under an S3 prefix: give "
                "--model-data s3://bucket/prefix/ (ending in /)"
            )
        if not self.multi_model and not self.model_data.endswith((".tar.gz", ".tgz")):
            raise CloudError(
                "--model-data %s: SageMaker wants a model.tar.gz (eikit package makes one)"
                % self.model_data
            )
        if not _ROLE.match(self.role):
            raise CloudError("--role must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
        if self.accelerator_type is not None and self.accelerator_type not in EI_TYPES:
            raise CloudError(
                "--accelerator-type %s: one of %s" % (self.accelerator_type, ", ".join(EI_TYPES))
            )
        if self.instance_count < 1:
            raise CloudError("--instance-count must be at least 1")
        check_target(self.image, self.instance_type, ei=bool(self.accelerator_type))
        if self.autoscale and not self.autoscale[0] <= self.instance_count <= self.autoscale[1]:
            raise CloudError(
                "--instance-count %d is outside --min %d .. --max %d"
                % (self.instance_count, self.autoscale[0], self.autoscale[1])
            )

    def scaling(self) -> Dict[str, Dict[str, Any]]:
        """The autoscaling the endpoint gets once InService (none without --min/--max)."""
        if not self.autoscale:
            return {}
        low, high, per_instance = self.autoscale
        return {VARIANT: scaling.target_tracking(self.endpoint, VARIANT, low, high, per_instance)}


def plan_deploy(request: DeployRequest, exists: bool, suffix: str) -> List[Call]:
    """The calls that deploy ``request``: the endpoint is updated when it ``exists``."""
    request.check()
    name = request.name or resource_name(request.endpoint, suffix)
    container: Dict[str, Any] = {"Image": request.image, "ModelDataUrl": request.model_data}
    if request.env:
        container["Environment"] = dict(request.env)
    if request.multi_model:
        container["Mode"] = "MultiModel"
    variant: Dict[str, Any] = {
        "VariantName": VARIANT,
        "ModelName": name,
        "InitialInstanceCount": request.instance_count,
        "InstanceType": request.instance_type,
        "InitialVariantWeight": 1.0,
    }
    if request.accelerator_type:
        variant["AcceleratorType"] = request.accelerator_type
    endpoint_call = "update_endpoint" if exists else "create_endpoint"
    return [
        Call(
            "sagemaker",
            "create_model",
            {"ModelName": name, "ExecutionRoleArn": request.role, "PrimaryContainer": container},
        ),
        Call(
            "sagemaker",
            "create_endpoint_config",
            {"EndpointConfigName": name, "ProductionVariants": [variant]},
        ),
        Call(
            "sagemaker",
            endpoint_call,
            {"EndpointName": request.endpoint, "EndpointConfigName": name},
            "the endpoint exists" if exists else "a new endpoint",
        ),
    ]


def endpoint_exists(clients: Clients, endpoint: str) -> Optional[Dict[str, Any]]:
    """The endpoint's description, or None when there is no such endpoint."""
    try:
        return dict(clients.sagemaker.describe_endpoint(EndpointName=endpoint))
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise CloudError("cannot read endpoint %s: %s" % (endpoint, describe_error(exc))) from exc


def wait_in_service(
    clients: Clients, endpoint: str, waiter: Waiter, timeout: float
) -> Dict[str, Any]:
    """Wait while the endpoint is Creating/Updating/...; returns its last description."""
    return waiter.wait(
        "endpoint %s" % endpoint,
        lambda: dict(clients.sagemaker.describe_endpoint(EndpointName=endpoint)),
        lambda answer: str(answer.get("EndpointStatus")),
        done=("InService",),
        failed=("Failed", "OutOfService", "UpdateRollbackFailed"),
        timeout=timeout,
    )


def deploy(
    clients: Clients,
    request: DeployRequest,
    suffix: str,
    waiter: Waiter,
    timeout: float,
    out: TextIO,
    dry_run: bool = False,
) -> int:
    """Deploy (or ``dry_run``: print the calls); 0 once InService, 1 when it failed."""
    current = endpoint_exists(clients, request.endpoint)
    if current is not None:
        status = current.get("EndpointStatus")
        if status not in ("InService", "Failed") and not dry_run:
            raise CloudError(
                "endpoint %s is %s: wait until it is InService, then deploy again"
                % (request.endpoint, status)
            )
        scaled = scaling.scaled_variants(clients, request.endpoint, current)
        if scaled:
            raise CloudError(
                "endpoint %s has autoscaling on variant %s, which UpdateEndpoint refuses to "
                "replace; `eikit migrate endpoint %s --instance-type %s --image %s` keeps "
                "the scaling settings across the update"
                % (
                    request.endpoint,
                    ", ".join(scaled),
                    request.endpoint,
                    request.instance_type,
                    request.image,
                )
            )
    calls = plan_deploy(request, current is not None, suffix)
    if not request.multi_model:
        for warning in deploy_check(
            clients, request.model_data, request.instance_type, request.allow_uncompiled
        ):
            out.write("warning: %s\n" % warning)
    if dry_run:
        shown = calls + scaling.restore_calls(request.scaling())
        out.write("dry run: %d calls, nothing changed\n" % len(shown))
        for call in shown:
            out.write(call.show() + "\n")
        return 0
    for call in calls:
        out.write("%s.%s %s\n" % (call.service, call.operation, _names(call.params)))
        try:
            call.run(clients)
        except Exception as exc:
            raise CloudError("%s failed: %s" % (call.operation, describe_error(exc))) from exc
    try:
        answer = wait_in_service(clients, request.endpoint, waiter, timeout)
    except WaitTimeout as exc:
        raise CloudError(
            "%s; it may still finish: watch it with `aws sagemaker describe-endpoint "
            "--endpoint-name %s`; logs in %s" % (exc, request.endpoint, log_group(request.endpoint))
        ) from exc
    config = calls[1].params["EndpointConfigName"]
    if answer.get("EndpointStatus") != "InService":
        out.write(failure_text(answer, clients.region) + "\n")
        return 1
    if answer.get("EndpointConfigName") != config:
        # a failed update leaves the endpoint InService on its old config
        out.write(
            "the update to %s failed; endpoint %s still serves %s\n%s\n"
            % (
                config,
                request.endpoint,
                answer.get("EndpointConfigName"),
                failure_text(answer, clients.region),
            )
        )
        return 1
    out.write("endpoint %s is InService (config %s)\n" % (request.endpoint, config))
    wanted = request.scaling()
    if wanted:

        def run(call: Call) -> Any:
            out.write("%s.%s %s\n" % (call.service, call.operation, call.why))
            try:
                return call.run(clients)
            except Exception as exc:
                raise CloudError(
                    "%s failed: %s; the endpoint is InService without autoscaling: deploy "
                    "again with the same options to add it" % (call.operation, describe_error(exc))
                ) from exc

        scaling.restore(clients, request.endpoint, wanted, run)
        low, high, per_instance = request.autoscale or (0, 0, 0.0)
        out.write(
            "autoscaling: %d-%d instances, target %g invocations per instance a minute\n"
            % (low, high, per_instance)
        )
    return 0


def _names(params: Dict[str, Any]) -> str:
    return " ".join(
        "%s=%s" % (key, value) for key, value in sorted(params.items()) if key.endswith("Name")
    )
