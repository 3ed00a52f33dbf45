"""Probes for the accelerators TensorFlow can use here: EI, CUDA (CPU comes from the core).

- EI needs SageMaker's signal (``SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT=true``) first, then
  AWS's EI build of TF Serving, ``amazonei_tensorflow_model_server`` (EI reaches TensorFlow
  only through that binary; the Python side is stock). It is found on ``PATH``, or where
  the TF Serving path finds its binary when that binary is the EI build: the eia image's
  ``/opt/eikit/bin/tensorflow_model_server``, or one renamed elsewhere (AWS's images moved
  it to ``/usr/bin/tensorflow_model_server``) with ``EI_BINARY_MARKER`` beside it.
- CUDA goes through a ``CudaCheck`` callable, the seam tests replace. The default looks for
  NVIDIA device nodes first and only then imports TensorFlow and asks
  ``tf.config.list_physical_devices('GPU')``, so a CPU host never imports TensorFlow in the
  serving frontend.
- Neuron: not offered. Inferentia runs TensorFlow through ``tensorflow-neuron`` builds of
  TensorFlow 1.15/2.x that eikit does not package; the neuron image target serves on CPU.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Tuple

from eikit.accelerators import ProbeResult, ei_signal_reason, nvidia_device_nodes

if TYPE_CHECKING:
    from eikit.settings import Settings

CudaCheck = Callable[[], Tuple[int, str]]
# (path of an EI TF Serving binary or None, why not)
EiBinaryCheck = Callable[[], Tuple[Optional[Path], str]]

EI_BINARY = "amazonei_tensorflow_model_server"
EI_BINARY_MARKER = ".amazonei"  # a file <binary>.amazonei beside a renamed EI binary
# Where the eia image installs AWS's EI build (docker/tensorflow/Dockerfile, TARGET=eia).
EIA_IMAGE_BINARY = Path("/opt/eikit/bin/tensorflow_model_server")


def find_ei_binary(settings: Optional[Settings] = None) -> Tuple[Optional[Path], str]:
    found = shutil.which(EI_BINARY)
    if found:
        return Path(found), "%s at %s" % (EI_BINARY, found)
    binary: Optional[Path] = None
    if settings is not None:
        try:
            from eikit_tensorflow import serving

            binary = serving.find_binary(settings)
        except Exception as exc:  # the TF Serving path is optional: any failure is a reason
            return None, "%s not on PATH, and the TF Serving path is unavailable (%s: %s)" % (
                EI_BINARY,
                type(exc).__name__,
                exc,
            )
    if binary is not None:
        marker = binary.with_name(binary.name + EI_BINARY_MARKER)
        if "amazonei" in binary.name or marker.exists() or binary == EIA_IMAGE_BINARY:
            return binary, "EI TF Serving binary %s" % binary
        return None, "%s not on PATH; %s is not the EI build (no %s)" % (
            EI_BINARY,
            binary,
            marker.name,
        )
    return None, "no EI TF Serving binary (%s) on PATH" % EI_BINARY


def eia_probe(accelerator_present: bool, check: EiBinaryCheck) -> ProbeResult:
    missing_signal = ei_signal_reason(accelerator_present)
    if missing_signal is not None:
        return ProbeResult("eia", False, missing_signal)
    binary, text = check()
    if binary is None:
        return ProbeResult(
            "eia",
            False,
            "SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT=true but TensorFlow cannot use EI: %s" % text,
        )
    return ProbeResult(
        "eia",
        True,
        "EI accelerator attached (SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT=true); %s" % text,
        count=1,
        detail={"binary": str(binary)},
    )


def tf_cuda_check(device_root: Path = Path("/dev")) -> Tuple[int, str]:
    """The real check: NVIDIA device nodes, then TensorFlow's visible GPUs."""
    if not nvidia_device_nodes(device_root):
        return 0, "no NVIDIA devices (%s/nvidia[0-9]*)" % device_root
    try:
        import tensorflow as tf
    except ImportError as exc:
        return 0, "tensorflow does not import: %s" % exc
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        if not tf.test.is_built_with_cuda():
            return 0, "tensorflow %s is built without CUDA (tensorflow-cpu)" % tf.__version__
        return 0, "tf.config.list_physical_devices('GPU') is empty (no GPU visible, or no driver)"
    return len(gpus), "%d GPU(s) visible to tensorflow %s" % (len(gpus), tf.__version__)


def cuda_probe(check: CudaCheck) -> ProbeResult:
    count, reason = check()
    if count > 0:
        return ProbeResult("cuda", True, reason, count=count)
    return ProbeResult("cuda", False, reason)
