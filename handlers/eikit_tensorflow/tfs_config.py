"""What eikit hands a TF Serving binary: its model config file, its batching parameters file
and its command line, written exactly as AWS's TensorFlow Serving container writes them
(``container/sagemaker/serve.py`` ``_create_tfs_config``, ``tfs_utils.tfs_command``,
``tfs_utils.create_batching_config``), so a model and the ``SAGEMAKER_TFS_*`` settings made
for that container reach the binary unchanged.

Pure text, no TensorFlow: the tests parse what is written here with TF Serving's own protos
(``ModelServerConfig``, ``BatchingParameters``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

log = logging.getLogger(__name__)

# name -> version -> SavedModel directory (layout.discover's answer)
Models = Dict[str, Dict[int, Path]]

# AWS's fraction of GPU memory kept free for CUDA/cuDNN when several TF Serving processes
# share one GPU (SAGEMAKER_TFS_FRACTIONAL_GPU_MEM_MARGIN's default).
GPU_MEMORY_MARGIN = 0.2


def model_config(models: Models) -> str:
    """TF Serving's ``--model_config_file`` text proto: one ``config`` per model, its base
    path, and a ``specific`` version policy listing every version (AWS's format to the
    character: the file may hold ``config`` several times, so it is written, not dumped)."""
    config = "model_config_list: {\n"
    for name, versions in models.items():
        base = _base_path(name, versions)
        config += "  config: {\n"
        config += f"    name: '{name}'\n"
        config += f"    base_path: '{base}'\n"
        config += "    model_platform: 'tensorflow'\n"
        config += "    model_version_policy: {\n"
        config += "      specific: {\n"
        for version in versions:
            config += f"        versions: {version}\n"
        config += "      }\n"
        config += "    }\n"
        config += "  }\n"
    config += "}\n"
    return config


def _base_path(name: str, versions: Dict[int, Path]) -> Path:
    bases = {Path(path).parent for path in versions.values()}
    if len(bases) != 1:
        raise ValueError("model %r has versions under several directories: %s" % (name, bases))
    base = bases.pop()
    if "'" in str(base) or "\\" in str(base):
        # AWS quotes with '...' and escapes nothing: such a path would break the text proto.
        raise ValueError("TF Serving's model config cannot name the path %s" % base)
    return base


# AWS's defaults for SAGEMAKER_TFS_MAX_BATCH_SIZE and SAGEMAKER_TFS_BATCH_TIMEOUT_MICROS.
DEFAULT_MAX_BATCH_SIZE = 8
DEFAULT_BATCH_TIMEOUT_MICROS = 1000


@dataclass(frozen=True)
class Batching:
    """TF Serving's batching parameters, as AWS fills them: a setting when given, else
    AWS's default (which it names in a warning)."""

    max_batch_size: int
    batch_timeout_micros: int
    num_batch_threads: int
    max_enqueued_batches: int


def batching(
    max_batch_size: Optional[int],
    batch_timeout_micros: Optional[int],
    num_batch_threads: Optional[int],
    max_enqueued_batches: Optional[int],
    cpu_count: int,
    batch_transform: bool,
) -> Tuple[Batching, List[str]]:
    """The parameters, and one warning line per parameter left at AWS's default (AWS's
    wording): 8, 1000 µs, one thread per CPU, one enqueued batch per CPU (100,000,000 under
    batch transform, where SageMaker limits the concurrent requests instead)."""
    rows = [
        (
            "max_batch_size",
            "SAGEMAKER_TFS_MAX_BATCH_SIZE",
            max_batch_size,
            DEFAULT_MAX_BATCH_SIZE,
            "max_batch_size defaulted to {}. Set {} to override default. "
            "Tuning this parameter may yield better performance.",
        ),
        (
            "batch_timeout_micros",
            "SAGEMAKER_TFS_BATCH_TIMEOUT_MICROS",
            batch_timeout_micros,
            DEFAULT_BATCH_TIMEOUT_MICROS,
            "batch_timeout_micros defaulted to {}. Set {} to override "
            "default. Tuning this parameter may yield better performance.",
        ),
        (
            "num_batch_threads",
            "SAGEMAKER_TFS_NUM_BATCH_THREADS",
            num_batch_threads,
            cpu_count,
            "num_batch_threads defaulted to {},the number of CPUs. Set {} to override default.",
        ),
        (
            "max_enqueued_batches",
            "SAGEMAKER_TFS_MAX_ENQUEUED_BATCHES",
            max_enqueued_batches,
            100000000 if batch_transform else cpu_count,
            "max_enqueued_batches defaulted to {}. Set {} to override default. "
            "Tuning this parameter may be necessary to tune out-of-memory "
            "errors occur.",
        ),
    ]
    values: Dict[str, int] = {}
    warnings: List[str] = []
    for key, env, given, default, message in rows:
        if given is None:
            values[key] = default
            warnings.append(message.format(default, env))
        else:
            values[key] = given
    return Batching(**values), warnings


def batching_config(params: Batching) -> str:
    """TF Serving's ``--batching_parameters_file`` text proto, in AWS's order."""
    keys = ("max_batch_size", "batch_timeout_micros", "num_batch_threads", "max_enqueued_batches")
    return "".join("%s { value: %s }\n" % (key, getattr(params, key)) for key in keys)


def command(
    binary: Path,
    grpc_port: int,
    rest_port: int,
    config_file: Path,
    batching_file: Optional[Path] = None,
    intra_op_parallelism: Optional[int] = None,
    inter_op_parallelism: Optional[int] = None,
    gpu_memory_fraction: Optional[float] = None,
) -> List[str]:
    """The binary's argv, flags in AWS's order. ``--max_num_load_retries=0``: a model that
    fails to load fails the start-up at once instead of being retried for minutes.
    Parallelism 0 or None passes no flag (TensorFlow then picks), as AWS does."""
    argv = [
        str(binary),
        f"--port={grpc_port}",
        f"--rest_api_port={rest_port}",
        f"--model_config_file={config_file}",
        "--max_num_load_retries=0",
    ]
    if batching_file is not None:
        argv += ["--enable_batching=true", f"--batching_parameters_file={batching_file}"]
    if intra_op_parallelism:
        argv.append(f"--tensorflow_intra_op_parallelism={intra_op_parallelism}")
    if inter_op_parallelism:
        argv.append(f"--tensorflow_inter_op_parallelism={inter_op_parallelism}")
    if gpu_memory_fraction:
        argv.append(f"--per_process_gpu_memory_fraction={gpu_memory_fraction}")
    return argv


def gpu_memory_fraction(processes: int) -> Optional[float]:
    """AWS's share of one GPU's memory per TF Serving process when several run: (1 - margin)
    / processes, rounded to 4 places; None (no flag) for a single process."""
    if processes <= 1:
        return None
    return round((1 - GPU_MEMORY_MARGIN) / float(processes), 4)
