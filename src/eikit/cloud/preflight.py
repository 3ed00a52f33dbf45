"""Checks made before a migration changes anything; each failure says how to fix it.

- every new image is in ECR, for the instance's CPU architecture where the manifest says;
- every model's data is in S3;
- the account's endpoint quota for the new instance type covers the new fleet (Service
  Quotas, where it answers; during a blue/green update both fleets run at once);
- the new variants' settings suit the new instance type;
- whether the old config can be deployed again: a config with an EI accelerator cannot
  (AWS no longer provisions Elastic Inference), so going back then means SageMaker shifting
  traffic back to the old fleet while it still runs, not redeploying it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from eikit.cloud.aws import Clients, describe_error, error_code
from eikit.cloud.images import ARM_FAMILIES, build_command, instance_family, parse_image

MANIFEST_TYPES = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
]
_MISSING = ("NotFound", "NoSuchKey", "NoSuchBucket", "404")


@dataclass
class Finding:
    check: str  # image, model data, quota, variant, rollback
    problem: str
    fix: str = ""
    fatal: bool = True

    def show(self) -> str:
        return "[%s] %s%s" % (self.check, self.problem, (". Fix: " + self.fix) if self.fix else "")


def _ecr_ref(uri: str) -> Optional[Tuple[str, str, Dict[str, str]]]:
    """(registry id, repository, image id) of an ECR image URI, else None."""
    head, _, rest = uri.partition("/")
    parts = head.split(".")
    if len(parts) < 6 or parts[1:3] != ["dkr", "ecr"] or not rest:
        return None
    if "@" in rest:
        repository, digest = rest.split("@", 1)
        return parts[0], repository, {"imageDigest": digest}
    repository, _, tag = rest.rpartition(":")
    if not repository:
        repository, tag = rest, "latest"
    return parts[0], repository, {"imageTag": tag}


def image(clients: Clients, uri: str, instance_type: str) -> List[Finding]:
    """Is ``uri`` in ECR, with an image for ``instance_type``'s architecture?"""
    ref = _ecr_ref(uri)
    if ref is None:
        return [Finding("image", "%s is not in ECR: not checked" % uri, fatal=False)]
    registry, repository, image_id = ref
    parsed = parse_image(uri)
    build = build_command(parsed, clients.region) if parsed else "push it to ECR"
    try:
        answer = clients.ecr.batch_get_image(
            registryId=registry,
            repositoryName=repository,
            imageIds=[image_id],
            acceptedMediaTypes=MANIFEST_TYPES,
        )
    except Exception as exc:
        if "NotFound" in error_code(exc):
            return [Finding("image", "%s is not in ECR (%s)" % (uri, error_code(exc)), build)]
        return [Finding("image", "cannot check %s: %s" % (uri, describe_error(exc)), fatal=False)]
    if not answer.get("images"):
        return [Finding("image", "%s is not in ECR (ImageNotFound)" % uri, build)]
    wanted = "arm64" if instance_family(instance_type) in ARM_FAMILIES else "amd64"
    manifest = answer["images"][0].get("imageManifest") or "{}"
    try:
        listed = json.loads(manifest).get("manifests")
    except ValueError:
        listed = None
    if not listed:
        return []  # one image: its architecture is in the config blob, not the manifest
    platforms = sorted(
        "%s/%s" % (m.get("platform", {}).get("os"), m.get("platform", {}).get("architecture"))
        for m in listed
        if m.get("platform")
    )
    if "linux/%s" % wanted not in platforms:
        return [
            Finding(
                "image",
                "%s has no linux/%s image for %s (it has %s)"
                % (uri, wanted, instance_type, ", ".join(platforms) or "none"),
                "build and push it for linux/%s" % wanted,
            )
        ]
    return []


def _s3_location(container: Dict[str, Any]) -> Optional[Tuple[str, bool]]:
    """(s3 URI, is a prefix) of a container's model data, or None when it has none."""
    source = (container.get("ModelDataSource") or {}).get("S3DataSource")
    if source:
        return source["S3Uri"], source.get("S3DataType") == "S3Prefix"
    url = container.get("ModelDataUrl")
    if not url:
        return None
    return url, container.get("Mode") == "MultiModel" or url.endswith("/")


def model_data(clients: Clients, container: Dict[str, Any], role: str) -> List[Finding]:
    location = _s3_location(container)
    if location is None:
        return []
    uri, prefix = location
    if not uri.startswith("s3://"):
        return [Finding("model data", "%s is not an s3:// URI: not checked" % uri, fatal=False)]
    bucket, _, key = uri[len("s3://") :].partition("/")
    try:
        if prefix:
            listed = clients.s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
            if not listed.get("KeyCount"):
                raise _Missing()
        else:
            clients.s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if isinstance(exc, _Missing) or any(m in describe_error(exc) for m in _MISSING):
            return [
                Finding(
                    "model data",
                    "%s does not exist" % uri,
                    "upload it (`eikit package ... && aws s3 cp model.tar.gz %s`)" % uri,
                )
            ]
        return [
            Finding(
                "model data",
                "cannot read %s with your credentials (%s); SageMaker reads it as %s"
                % (uri, describe_error(exc), role or "the model's role"),
                fatal=False,
            )
        ]
    return []


class _Missing(Exception):
    pass


def quota_name(instance_type: str) -> str:
    return "%s for endpoint usage" % instance_type


def quotas(clients: Clients, needed: Dict[str, Tuple[int, int]]) -> List[Finding]:
    """``needed``: {instance type: (instances during the update, most with autoscaling)}."""
    try:
        listed: List[Dict[str, Any]] = []
        token: Optional[str] = None
        while True:
            params: Dict[str, Any] = {"ServiceCode": "sagemaker"}
            if token:
                params["NextToken"] = token
            page = clients.quotas.list_service_quotas(**params)
            listed += page.get("Quotas", [])
            token = page.get("NextToken")
            if not token:
                break
    except Exception as exc:
        return [
            Finding(
                "quota",
                "Service Quotas did not answer (%s): endpoint quotas not checked"
                % describe_error(exc),
                fatal=False,
            )
        ]
    by_name = {q.get("QuotaName"): q for q in listed}
    found: List[Finding] = []
    for instance_type in sorted(needed):
        now, most = needed[instance_type]
        quota = by_name.get(quota_name(instance_type))
        if quota is None:
            found.append(
                Finding(
                    "quota",
                    "no quota %r listed: not checked" % quota_name(instance_type),
                    fatal=False,
                )
            )
            continue
        value = int(quota.get("Value", 0))
        ask = (
            "aws service-quotas request-service-quota-increase --service-code sagemaker "
            "--quota-code %s --desired-value %d" % (quota.get("QuotaCode"), max(now, most))
        )
        if value < now:
            found.append(
                Finding(
                    "quota",
                    "%r is %d, the update needs %d %s instances (other endpoints on %s count "
                    "too)" % (quota_name(instance_type), value, now, instance_type, instance_type),
                    ask,
                )
            )
        elif value < most:
            found.append(
                Finding(
                    "quota",
                    "%r is %d: autoscaling can ask for %d and will stop at %d"
                    % (quota_name(instance_type), value, most, value),
                    ask,
                    fatal=False,
                )
            )
    return found


def variants(config: Dict[str, Any], instance_type: str) -> List[Finding]:
    found: List[Finding] = []
    for variant in config.get("ProductionVariants", []):
        name = variant.get("VariantName")
        if variant.get("ServerlessConfig"):
            found.append(
                Finding(
                    "variant",
                    "variant %s is serverless: it has no instance type to change" % name,
                    "migrate only endpoints that run on instances",
                )
            )
        elif int(variant.get("InitialInstanceCount") or 0) < 1:
            found.append(
                Finding("variant", "variant %s has no instances" % name, "set a count of 1+")
            )
    return found


def redeployable(old_variants: List[Dict[str, Any]]) -> bool:
    return not any(v.get("AcceleratorType") for v in old_variants)


def old_config(old_variants: List[Dict[str, Any]]) -> List[Finding]:
    """What rollback will mean: a config with EI cannot be deployed again."""
    ei = sorted({v["AcceleratorType"] for v in old_variants if v.get("AcceleratorType")})
    if not ei:
        return []
    return [
        Finding(
            "rollback",
            "the old config uses Elastic Inference (%s), which AWS no longer provisions, so it "
            "cannot be deployed again. Until the new fleet has baked, going back means "
            "SageMaker shifting traffic back to the old fleet, which keeps running during the "
            "update (auto-rollback on the guardrail alarms, or `eikit migrate rollback`); "
            "after the update finishes there is nothing to go back to" % ", ".join(ei),
            fatal=False,
        )
    ]


def fleet_sizes(state: Dict[str, Any]) -> Dict[str, Tuple[int, int]]:
    """{instance type: (instances during the update, most with autoscaling)}."""
    config = state["config"]
    needed: Dict[str, Tuple[int, int]] = {}
    for v in config["ProductionVariants"] + config.get("ShadowProductionVariants", []):
        now, most = needed.get(v["InstanceType"], (0, 0))
        scaled = (state["new_scaling"].get(v["VariantName"]) or {}).get("target", {})
        count = int(v["InitialInstanceCount"])
        needed[v["InstanceType"]] = (now + count, most + max(count, scaled.get("MaxCapacity", 0)))
    for old in state["old_variants"]:
        if old["InstanceType"] in needed:  # blue/green: both fleets run during the update
            now, most = needed[old["InstanceType"]]
            needed[old["InstanceType"]] = (now + int(old.get("InitialInstanceCount") or 1), most)
    return needed


def check(clients: Clients, state: Dict[str, Any], images: List[str]) -> List[Finding]:
    """Every check, on a planned migration's state."""
    found: List[Finding] = []
    for uri in sorted(set(images)):
        found += image(clients, uri, state["instance_type"])
    compiled = {j["target"]: j["source"] for j in (state.get("compile") or {}).get("jobs", [])}
    for model in state["models"]:
        container = dict(model["PrimaryContainer"])
        if container.get("ModelDataUrl") in compiled:  # written by the compile step: its source
            container["ModelDataUrl"] = compiled[container["ModelDataUrl"]]
        found += model_data(clients, container, model.get("ExecutionRoleArn", ""))
    found += quotas(clients, fleet_sizes(state))
    found += variants(state["config"], state["instance_type"])
    return found + old_config(state["old_variants"])
