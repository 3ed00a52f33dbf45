"""Every setting eikit reads, in one place.

SageMaker's own ``SAGEMAKER_*`` names are kept as aliases so the container contract holds;
eikit's own settings are ``EIKIT_*``. The CLI builds one ``Settings`` and passes it down;
nothing else reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Type

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from eikit.logs import level_name

ACCELERATOR_CHOICES = ("auto", "eia", "neuron", "cuda", "cpu")
BATCH_STRATEGIES = ("MULTI_RECORD", "SINGLE_RECORD")
TFS_CLIENTS = ("auto", "grpc", "rest")
WORKER_STARTS = ("fork", "spawn")


class _DocumentedNames(EnvSettingsSource):
    """The environment, read only under each setting's documented name (its alias): an
    unrelated ``PORT`` or ``WORKERS`` in a container must not change eikit. Field names
    (``port=``) stay keyword arguments, for the CLI's overrides."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> Tuple[Any, str, bool]:
        value, key, is_complex = super().get_field_value(field, field_name)
        if field.alias is not None and key != field.alias:
            return None, key, is_complex  # found under the field name, not the documented one
        return value, key, is_complex


class Settings(BaseSettings):
    # The environment is read only under the aliases, spelled exactly (_DocumentedNames,
    # case_sensitive); keyword arguments may use field names (the CLI's overrides).
    model_config = SettingsConfigDict(
        populate_by_name=True,
        case_sensitive=True,
        extra="ignore",
        frozen=True,
        protected_namespaces=(),  # model_dir, model_server_timeout are SageMaker's names
    )

    def __init__(self, **values: Any) -> None:
        # Keyword arguments by field name become the alias, so they win over the environment
        # on every pydantic-settings (older ones let an alias from the environment win).
        fields = type(self).model_fields
        super().__init__(
            **{(fields[k].alias or k) if k in fields else k: v for k, v in values.items()}
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: Type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> Tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _DocumentedNames(settings_cls))

    # --- the SageMaker hosting contract ---
    port: int = Field(
        8080, alias="SAGEMAKER_BIND_TO_PORT", ge=1, le=65535, description="Port the server binds."
    )
    base_dir: Path = Field(
        Path("/opt/ml"),
        alias="SAGEMAKER_BASE_DIR",
        description="Holds `model/` (model files, optional `code/`).",
    )
    program: str = Field(
        "inference.py",
        alias="SAGEMAKER_PROGRAM",
        description="User script in `model/code/` that defines the hooks.",
    )
    workers: Optional[int] = Field(
        None,
        alias="SAGEMAKER_MODEL_SERVER_WORKERS",
        ge=1,
        description="Worker processes, each holding the model. Unset: CPU cores on CPU, "
        "one per GPU on CUDA, one per NeuronCore on Neuron (each pinned to its core), one "
        "on EI.",
    )
    model_server_timeout: float = Field(
        60.0,
        alias="SAGEMAKER_MODEL_SERVER_TIMEOUT",
        gt=0,
        description="Seconds one prediction may take; past it the client gets 504 "
        "and the worker is replaced.",
    )
    startup_timeout: float = Field(
        600.0,
        alias="SAGEMAKER_STARTUP_TIMEOUT",
        gt=0,
        description="Seconds the workers may take to load the model before the load "
        "counts as failed; a replacement worker that takes longer is killed and retried.",
    )
    max_payload_in_mb: float = Field(
        6.0,
        alias="SAGEMAKER_MAX_PAYLOAD_IN_MB",
        gt=0,
        description="Largest request body; larger ones get 413.",
    )
    default_accept: str = Field(
        "application/json",
        alias="SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT",
        description="Response type when `Accept` is missing or `*/*`.",
    )
    log_level: str = Field(
        "INFO",
        alias="SAGEMAKER_CONTAINER_LOG_LEVEL",
        description="Logging level: a name (`INFO`, `warn`, any case) or a number, as the "
        "SageMaker SDK sets it (`20`; levels between names such as `25` too).",
    )
    multi_model: bool = Field(
        False,
        alias="SAGEMAKER_MULTI_MODEL",
        description="Serve a multi-model endpoint: models are loaded, listed and unloaded "
        "through `/models` and invoked by name; `model/` is not read.",
    )
    accelerator_present: bool = Field(
        False,
        alias="SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT",
        description="Set by SageMaker when an Elastic Inference accelerator is attached.",
    )
    tfs_default_model_name: Optional[str] = Field(
        None,
        alias="SAGEMAKER_TFS_DEFAULT_MODEL_NAME",
        description="TensorFlow: the model a request naming none goes to. Unset: the first "
        "model found, as in AWS's TensorFlow Serving container.",
    )
    # --- eikit's own ---
    host: str = Field("0.0.0.0", alias="EIKIT_HOST", description="Address the server binds.")
    framework: Optional[str] = Field(
        None,
        alias="EIKIT_FRAMEWORK",
        description="Runtime to use (`pytorch`, ...). Unset: the only one installed.",
    )
    accelerator: str = Field(
        "auto",
        alias="EIKIT_ACCELERATOR",
        description="`auto`, `eia`, `neuron`, `cuda` or `cpu`. `auto` takes the best one "
        "available and falls back if the model fails to load on it.",
    )
    strict_accelerator: bool = Field(
        False,
        alias="EIKIT_STRICT_ACCELERATOR",
        description="Fail instead of falling back when the model does not load on the "
        "chosen accelerator.",
    )
    device_root: Path = Field(
        Path("/dev"),
        alias="EIKIT_DEVICE_ROOT",
        description="Where device nodes (`neuron*`) are looked for.",
    )
    neuron_sysfs_root: Path = Field(
        Path("/sys/devices/virtual/neuron_device"),
        alias="EIKIT_NEURON_SYSFS_ROOT",
        description="Where the Neuron driver's sysfs tree is read (cores per device, generation).",
    )
    neuron_visible_cores: Optional[str] = Field(
        None,
        alias="NEURON_RT_VISIBLE_CORES",
        description="The Neuron runtime's own variable: NeuronCores this container may use "
        "(`0-3`, `0,2`). eikit spreads its workers over them and gives each worker one "
        "core (`NEURON_RT_VISIBLE_CORES=<core>`, `NEURON_RT_NUM_CORES=1`). Unset: every "
        "core found.",
    )
    split_batches: bool = Field(
        True,
        alias="EIKIT_SPLIT_BATCHES",
        description="A model compiled for Neuron: a request larger than every compiled "
        "batch size is split into chunks of the largest (`true`), or refused with 413 "
        "naming the sizes (`false`).",
    )
    worker_threads: Optional[int] = Field(
        None,
        alias="EIKIT_WORKER_THREADS",
        ge=1,
        description="Framework threads per worker. Unset: CPU cores divided by workers (on a "
        "multi-model endpoint, by the model's own workers).",
    )
    worker_start: str = Field(
        "fork",
        alias="EIKIT_WORKER_START",
        description="How worker processes start. `fork`: from a template process that "
        "imported eikit and the framework once (no thread, no device touched), so workers "
        "share its memory pages and start without importing the framework again; used where "
        "the runtime and accelerator are known to fork safely (PyTorch on CPU), "
        "elsewhere workers are spawned. `spawn`: each worker is a new Python process.",
    )
    install_requirements: bool = Field(
        True,
        alias="EIKIT_INSTALL_REQUIREMENTS",
        description="Install `code/requirements.txt` with pip before importing the script.",
    )
    requirements_target: Optional[Path] = Field(
        None,
        alias="EIKIT_REQUIREMENTS_TARGET",
        description="Install requirements into this folder (put on the workers' path) "
        "instead of the server's environment.",
    )
    batch_strategy: str = Field(
        "MULTI_RECORD",
        alias="EIKIT_BATCH_STRATEGY",
        description="BatchStrategy reported to batch transform by `/execution-parameters`.",
    )
    worker_queue: int = Field(
        4,
        alias="EIKIT_WORKER_QUEUE",
        ge=1,
        description="Requests sent ahead to each worker (the one it runs and those queued "
        "behind it). More keeps busy workers fed on small models; 1 sends a request only to "
        "an idle worker, best when request costs vary widely.",
    )
    ts_batch_size: int = Field(
        1,
        alias="SAGEMAKER_TS_BATCH_SIZE",
        ge=1,
        description="Dynamic batching: the most requests a worker runs as one batch (AWS's "
        "PyTorch container's name, read by every runtime here). 1 (the default): no batching. "
        "See Dynamic batching in the serving docs.",
    )
    ts_max_batch_delay: float = Field(
        100.0,
        alias="SAGEMAKER_TS_MAX_BATCH_DELAY",
        ge=0,
        description="Dynamic batching: the most milliseconds a request waits for others to "
        "fill its batch once a worker is free for it (with `SAGEMAKER_TS_BATCH_SIZE` above 1).",
    )
    max_queue: int = Field(
        1000,
        alias="EIKIT_MAX_QUEUE",
        ge=1,
        description="Requests that may wait for a worker; past it the client gets 503.",
    )
    max_header_bytes: int = Field(
        65536,
        alias="EIKIT_MAX_HEADER_BYTES",
        ge=1024,
        description="Largest request head (request line and headers, counted from its first "
        "byte); past it the client gets 431 and the connection is closed.",
    )
    header_timeout: float = Field(
        20.0,
        alias="EIKIT_HEADER_TIMEOUT",
        gt=0,
        description="Seconds from a request's first byte to the end of its headers; past it "
        "the client gets 408 and the connection is closed.",
    )
    body_timeout: float = Field(
        60.0,
        alias="EIKIT_BODY_TIMEOUT",
        gt=0,
        description="Seconds from the end of a request's headers to the end of the body it "
        "declared; past it the client gets 408 and the connection is closed.",
    )
    keep_alive_timeout: float = Field(
        75.0,
        alias="EIKIT_KEEP_ALIVE_TIMEOUT",
        gt=0,
        description="Seconds a connection may stay idle (before its first request or between "
        "two) before it is closed; above SageMaker's 60 s idle timeout, as AWS recommends.",
    )
    max_connections: int = Field(
        1000,
        alias="EIKIT_MAX_CONNECTIONS",
        ge=1,
        description="Open client connections; past it a new one gets 503 and is closed. "
        "Lowered at start-up to fit the open-files limit, keeping descriptors for the workers.",
    )
    max_decompressed_in_mb: Optional[float] = Field(
        None,
        alias="EIKIT_MAX_DECOMPRESSED_MB",
        gt=0,
        description="Most array data one NPY or NPZ request may decode to (an NPZ's members "
        "inflated, in total); more gets 413. Unset: 4 × `SAGEMAKER_MAX_PAYLOAD_IN_MB`.",
    )
    graceful_timeout: float = Field(
        25.0,
        alias="EIKIT_GRACEFUL_TIMEOUT",
        gt=0,
        description="Seconds SIGTERM waits for in-flight requests before stopping the workers.",
    )
    max_reload_failures: int = Field(
        5,
        alias="EIKIT_MAX_RELOAD_FAILURES",
        ge=0,
        description="After the first load, failed worker loads in a row, while no worker "
        "serves, that mark the model failed (`/ping` 503 for good). While any worker serves, "
        "failed replacements are retried with backoff (1 s doubling to 30 s) without limit. "
        "0: never give up.",
    )
    access_log: bool = Field(
        False,
        alias="EIKIT_ACCESS_LOG",
        description="Log one line per request (`access` logger, at INFO): client, method, "
        "path, status, response bytes, milliseconds, request id.",
    )
    max_models: Optional[int] = Field(
        None,
        alias="EIKIT_MAX_MODELS",
        ge=1,
        description="Multi-model: most models loaded at once; loading one more unloads the "
        "least recently used idle model, or gets 507 when every model is busy. Unset: no "
        "limit but memory.",
    )
    models_memory_mb: Optional[float] = Field(
        None,
        alias="EIKIT_MODELS_MEMORY_MB",
        gt=0,
        description="Multi-model: memory the loaded models' workers may hold in all, measured "
        "(proportional set size, children included) after each load. Past it the least "
        "recently used idle models are unloaded, or the load gets 507. Unset: 85% of the "
        "container's memory limit (or the machine's memory).",
    )
    models_gpu_memory_mb: Optional[float] = Field(
        None,
        alias="EIKIT_MODELS_GPU_MEMORY_MB",
        gt=0,
        description="Multi-model on CUDA: GPU memory the loaded models' workers may hold in "
        "all, as `nvidia-smi` reports it per process; past it the least recently used idle "
        "models are unloaded, or the load gets 507. Unset: 90% of the GPUs' memory.",
    )
    models_measure_interval: float = Field(
        30.0,
        alias="EIKIT_MODELS_MEASURE_INTERVAL",
        gt=0,
        description="Multi-model: seconds between two measurements of every loaded model's "
        "memory (host and GPU), so that growth after its first requests counts; models over "
        "the caps are then unloaded, least recently used idle ones first.",
    )
    model_restarts: int = Field(
        2,
        alias="EIKIT_MODEL_RESTARTS",
        ge=0,
        description="Multi-model: times a loaded model whose workers can no longer serve "
        "(`EIKIT_MAX_RELOAD_FAILURES` reached) is restarted with new workers. Past it the "
        "model is unloaded: its invocations get 404, and SageMaker loads it again.",
    )
    models_root: Optional[Path] = Field(
        None,
        alias="EIKIT_MODELS_ROOT",
        description="Multi-model: the folder a load request's `url` must lie in (else 400). "
        "Unset: `SAGEMAKER_BASE_DIR/models`, where SageMaker puts a multi-model endpoint's "
        "models.",
    )
    cgroup_root: Path = Field(
        Path("/sys/fs/cgroup"),
        alias="EIKIT_CGROUP_ROOT",
        description="Where the container's cgroup files are read: its memory limit, memory in "
        "use, and the OOM killer's count of kills (a worker SIGKILLed during a load while it "
        "grew is a 507).",
    )
    metrics: bool = Field(
        True,
        alias="EIKIT_METRICS",
        description="Serve Prometheus metrics at `GET /metrics` on the server's port (not a "
        "route of the SageMaker contract, so SageMaker never calls it).",
    )
    # --- TensorFlow's TF Serving path (AWS's container's names, and eikit's own) ---
    tfs_binary: Optional[str] = Field(
        None,
        alias="EIKIT_TFS_BINARY",
        description="TensorFlow: the TF Serving binary that serves the SavedModels (a path, or "
        "a name on PATH); `none`: TensorFlow in the worker. Unset: "
        "`/opt/eikit/bin/tensorflow_model_server` (the eia image's EI build), else "
        "`tensorflow_model_server` on PATH, else TensorFlow in the worker.",
    )
    tfs_client: str = Field(
        "auto",
        alias="EIKIT_TFS_CLIENT",
        description="TensorFlow: how workers call the TF Serving binary: `grpc` "
        "(tensorflow-serving-api, needs TensorFlow's protos), `rest` (standard library "
        "only), or `auto`: gRPC where its packages import, else REST.",
    )
    tfs_instance_count: Optional[int] = Field(
        None,
        alias="SAGEMAKER_TFS_INSTANCE_COUNT",
        ge=1,
        description="TensorFlow with a TF Serving binary: TF Serving processes, one per worker "
        "(the worker count when `SAGEMAKER_MODEL_SERVER_WORKERS` is unset). Unset: one on EI, "
        "else the usual worker count.",
    )
    tfs_enable_batching: bool = Field(
        False,
        alias="SAGEMAKER_TFS_ENABLE_BATCHING",
        description="TensorFlow: batch requests. With a TF Serving binary: `--enable_batching` "
        "with a batching parameters file from the four settings below; with TensorFlow in the "
        "worker: eikit's dynamic batching with `SAGEMAKER_TFS_MAX_BATCH_SIZE` and "
        "`SAGEMAKER_TFS_BATCH_TIMEOUT_MICROS` (unless `SAGEMAKER_TS_BATCH_SIZE` is set).",
    )
    tfs_max_batch_size: Optional[int] = Field(
        None,
        alias="SAGEMAKER_TFS_MAX_BATCH_SIZE",
        ge=1,
        description="TF Serving batching: `max_batch_size`. Unset: 8.",
    )
    tfs_batch_timeout_micros: Optional[int] = Field(
        None,
        alias="SAGEMAKER_TFS_BATCH_TIMEOUT_MICROS",
        ge=0,
        description="TF Serving batching: `batch_timeout_micros`. Unset: 1000.",
    )
    tfs_num_batch_threads: Optional[int] = Field(
        None,
        alias="SAGEMAKER_TFS_NUM_BATCH_THREADS",
        ge=1,
        description="TF Serving batching: `num_batch_threads`. Unset: the CPU count.",
    )
    tfs_max_enqueued_batches: Optional[int] = Field(
        None,
        alias="SAGEMAKER_TFS_MAX_ENQUEUED_BATCHES",
        ge=1,
        description="TF Serving batching: `max_enqueued_batches`. Unset: the CPU count "
        "(100000000 under batch transform, `SAGEMAKER_BATCH`).",
    )
    tfs_intra_op_parallelism: Optional[int] = Field(
        None,
        alias="SAGEMAKER_TFS_INTRA_OP_PARALLELISM",
        ge=0,
        description="TF Serving's `--tensorflow_intra_op_parallelism` (0: TensorFlow's "
        "choice). Unset: `EIKIT_WORKER_THREADS` if set, else the cores divided by the TF "
        "Serving processes when there are several.",
    )
    tfs_inter_op_parallelism: Optional[int] = Field(
        None,
        alias="SAGEMAKER_TFS_INTER_OP_PARALLELISM",
        ge=0,
        description="TF Serving's `--tensorflow_inter_op_parallelism` (0 or unset: "
        "TensorFlow's choice).",
    )
    safe_port_range: Optional[str] = Field(
        None,
        alias="SAGEMAKER_SAFE_PORT_RANGE",
        pattern=r"^\s*\d+\s*-\s*\d+\s*$",
        description="Ports the container may use besides its own (`low-high`), set by "
        "SageMaker: worker i's TF Serving takes low+2i (gRPC) and low+2i+1 (REST), as in "
        "AWS's container; on a multi-model endpoint, worker numbers come from a free list that "
        "unloads give back. Unset: free loopback ports.",
    )
    batch_transform: bool = Field(
        False,
        alias="SAGEMAKER_BATCH",
        description="Set by SageMaker batch transform; raises TF Serving's default "
        "`max_enqueued_batches`, as AWS's container does.",
    )

    @field_validator("accelerator")
    @classmethod
    def _known_accelerator(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in ACCELERATOR_CHOICES:
            raise ValueError("must be one of %s" % ", ".join(ACCELERATOR_CHOICES))
        return value

    @field_validator("tfs_client")
    @classmethod
    def _known_client(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in TFS_CLIENTS:
            raise ValueError("must be one of %s" % ", ".join(TFS_CLIENTS))
        return value

    @field_validator("worker_start")
    @classmethod
    def _known_start(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in WORKER_STARTS:
            raise ValueError("must be one of %s" % ", ".join(WORKER_STARTS))
        return value

    @field_validator("batch_strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in BATCH_STRATEGIES:
            raise ValueError("must be one of %s" % ", ".join(BATCH_STRATEGIES))
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _known_level(cls, value: Any) -> str:
        return level_name(value)  # names or numbers, as AWS's containers take them

    @property
    def model_dir(self) -> Path:
        return self.base_dir / "model"

    @property
    def models_dir(self) -> Path:
        """Where a multi-model endpoint's models must lie."""
        return self.models_root or self.base_dir / "models"

    @property
    def code_dir(self) -> Path:
        return self.model_dir / "code"

    @property
    def max_payload_bytes(self) -> int:
        return int(self.max_payload_in_mb * 1024 * 1024)

    @property
    def max_decompressed_bytes(self) -> int:
        megabytes = self.max_decompressed_in_mb or 4 * self.max_payload_in_mb
        return int(megabytes * 1024 * 1024)

    def to_env(self) -> Dict[str, str]:
        """The settings as environment variables, for a child process or a container."""
        env: Dict[str, str] = {}
        for name, field in type(self).model_fields.items():
            value: Any = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            env[str(field.alias)] = str(value)
        return env


def load_settings(**overrides: Any) -> Settings:
    """Read the environment once; ``overrides`` (by field name) win over it."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def settings_table() -> str:
    """The settings reference, generated from the fields above: the docs site's settings page
    (docs/hooks/settings.py puts it there at build time)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for field in Settings.model_fields.values():
        default = field.default
        shown = (
            "unset"
            if default is None
            else str(default).lower()
            if isinstance(default, bool)
            else str(default)
        )
        lines.append("| `%s` | `%s` | %s |" % (field.alias, shown, field.description))
    return "\n".join(lines)


if __name__ == "__main__":
    print(settings_table())
