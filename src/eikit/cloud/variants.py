"""The new variants of a migration: the new instance type, the EI accelerator dropped, and each
model copied with the image that serves on the new instance type (the same model when its
image already does). Only settings that are set are copied: moto and LocalStack answer
``{}`` for one never made, which CreateModel and CreateEndpointConfig refuse.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Optional

from eikit.cloud.aws import Clients, CloudError, resource_name
from eikit.cloud.images import check_target, instance_family, parse_image, target_for

MODEL_KEYS = ("ExecutionRoleArn", "VpcConfig", "EnableNetworkIsolation")
CONTAINER_KEYS = (
    "ContainerHostname",
    "ImageConfig",
    "Mode",
    "ModelDataUrl",
    "ModelDataSource",
    "Environment",
    "ModelPackageName",
    "InferenceSpecificationName",
    "MultiModelConfig",
)
VARIANT_DROPPED = ("AcceleratorType", "InferenceAmiVersion")
# Families whose instances have local NVMe storage, where SageMaker takes no VolumeSizeInGB.
NVME_FAMILIES = ("c5d", "m5d", "r5d", "g4dn", "g5", "g6", "g6e", "p3dn", "p4d", "p4de", "p5")


def is_set(value: Any) -> bool:
    """moto and LocalStack answer ``{}`` or ``[]`` for a setting that was never made."""
    return value not in (None, {}, [], "")


# (the old model, its container, the image it will have) -> the archive it uses instead
DataHook = Callable[[Dict[str, Any], Dict[str, Any], str], Optional[str]]


def _new_image(
    current: str, target: str, image: Optional[str], instance_type: str
) -> Optional[str]:
    """The image the model needs on ``target`` (None: keep ``current``), or refuse."""
    if image:
        check_target(image, instance_type)
        return image if image != current else None
    parsed = parse_image(current)
    if parsed is None:
        raise CloudError(
            "the model's image %s is not an eikit image, so eikit cannot tell which image "
            "serves on a %s instance: pass --image URI" % (current, target)
        )
    if parsed.target == target:
        return None
    return parsed.with_target(target).uri


class Planner:
    """Reads the endpoint and builds the state; one per plan."""

    def __init__(
        self, clients: Clients, endpoint: str, instance_type: str, suffix: str, image: Optional[str]
    ) -> None:
        self.clients = clients
        self.endpoint = endpoint
        self.instance_type = instance_type
        self.suffix = suffix
        self.image = image
        self.target = target_for(instance_type)
        self.data: Optional[DataHook] = None  # a Neuron target: the compiled archive
        self.notes: List[str] = []
        self.warnings: List[str] = []
        self.models: List[Dict[str, Any]] = []
        self.swapped: Dict[str, str] = {}
        self.images: List[str] = []

    def variant(self, old: Dict[str, Any], count: int) -> Dict[str, Any]:
        variant = {k: copy.deepcopy(v) for k, v in old.items() if k not in VARIANT_DROPPED}
        if old.get("AcceleratorType"):
            self.notes.append(
                "variant %s: EI accelerator %s removed"
                % (old["VariantName"], old["AcceleratorType"])
            )
        if "VolumeSizeInGB" in variant and instance_family(self.instance_type) in NVME_FAMILIES:
            del variant["VolumeSizeInGB"]
            self.warnings.append(
                "variant %s: VolumeSizeInGB dropped: %s has NVMe instance storage, where "
                "SageMaker takes no EBS volume size" % (old["VariantName"], self.instance_type)
            )
        variant["InstanceType"] = self.instance_type
        variant["InitialInstanceCount"] = int(count)
        model_name = old["ModelName"]
        if model_name not in self.swapped:
            self.swapped[model_name] = self.swap_model(model_name)
        variant["ModelName"] = self.swapped[model_name]
        return variant

    def swap_model(self, model_name: str) -> str:
        """The model the new config uses: the same one, or a copy with the target's image."""
        described = dict(self.clients.sagemaker.describe_model(ModelName=model_name))
        containers = [described["PrimaryContainer"]] if described.get("PrimaryContainer") else []
        containers = containers or list(described.get("Containers", []))
        if len(containers) != 1:
            if self.image:
                raise CloudError(
                    "model %s has %d containers (an inference pipeline); eikit swaps one image "
                    "only" % (model_name, len(containers))
                )
            self.notes.append(
                "model %s: %d containers, kept as it is" % (model_name, len(containers))
            )
            if self.data is not None:
                self.warnings.append(
                    "model %s: an inference pipeline: eikit does not check whether its "
                    "archives are compiled for %s" % (model_name, self.target)
                )
            return model_name
        current = containers[0]["Image"]
        new_image = _new_image(current, self.target, self.image, self.instance_type)
        self.images.append(new_image or current)
        new_data = self.data(described, containers[0], new_image or current) if self.data else None
        if new_image is None and new_data is None:
            self.notes.append(
                "model %s: image %s kept (it serves on %s)" % (model_name, current, self.target)
            )
            return model_name
        container = {
            k: copy.deepcopy(v)
            for k, v in containers[0].items()
            if k in CONTAINER_KEYS and is_set(v)
        }
        container["Image"] = new_image or current
        if new_data is not None:
            container["ModelDataUrl"] = new_data
        new_name = resource_name(model_name, self.suffix)
        create: Dict[str, Any] = {"ModelName": new_name, "PrimaryContainer": container}
        for key in MODEL_KEYS:
            if is_set(described.get(key)):
                create[key] = copy.deepcopy(described[key])
        self.models.append(create)
        self.notes.append(
            "model %s: new model %s with image %s (%s)%s"
            % (
                model_name,
                new_name,
                container["Image"],
                "was %s" % current if new_image else "kept",
                ", model data %s" % new_data if new_data else "",
            )
        )
        return new_name
