"""A stand-in ``tensorflow_model_server`` for eikit's tests (no TF Serving binary installs here).

It takes the command line eikit writes (``--port``, ``--rest_api_port``,
``--model_config_file``, ``--max_num_load_retries``, ``--enable_batching``,
``--batching_parameters_file``, ``--tensorflow_intra_op_parallelism``,
``--tensorflow_inter_op_parallelism``, ``--per_process_gpu_memory_fraction``), refuses any
other flag as TF Serving's parser does, parses the model config and batching files with TF
Serving's own text-proto messages, loads the real SavedModels with TensorFlow (every version
the config lists), and only then opens TF Serving's real gRPC services
(``PredictionService``: Predict, Classify, Regress, GetModelMetadata; ``ModelService``:
GetModelStatus) and its REST API (``/v1/models/<name>[/versions/<v>][:predict|:classify|
:regress]``, ``/metadata``), with TF Serving's status codes. A model that fails to load
fails the start-up, as with ``--max_num_load_retries=0``: "Failed to start server" and exit
status 255. Its REST API is TF Serving's design: JSON -> the gRPC request -> the same
servable -> JSON (eikit's conversion, ``grpc_client``).

What it does not do: batch (the flags and file are checked, nothing is batched), serve a
config reloaded at run time, or run on an accelerator.

For the tests' fault cases, from the environment:
  EIKIT_STANDIN_RECORD=DIR   write DIR/<pid>.json: argv, the config and batching files' text
  EIKIT_STANDIN_HANG=1       load, then never open the ports (a hung start-up)
  EIKIT_STANDIN_FAIL_LOAD=1  fail the start-up as a model that does not load fails it
  EIKIT_STANDIN_DELAY=S      take S seconds more to load
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

FLAGS = {
    "port": int,
    "rest_api_port": int,
    "model_config_file": str,
    "max_num_load_retries": int,
    "enable_batching": lambda v: v.lower() in ("true", "1", ""),
    "batching_parameters_file": str,
    "tensorflow_intra_op_parallelism": int,
    "tensorflow_inter_op_parallelism": int,
    "per_process_gpu_memory_fraction": float,
    "version": lambda v: True,
}


def parse_flags(argv: List[str]) -> Dict[str, Any]:
    flags: Dict[str, Any] = {}
    for arg in argv:
        match = re.match(r"^--([a-z_]+)(?:=(.*))?$", arg)
        if not match or match.group(1) not in FLAGS:
            sys.stderr.write("ERROR: unknown command line flag '%s'\n" % arg.lstrip("-"))
            sys.exit(1)
        name, value = match.group(1), match.group(2) or ""
        try:
            flags[name] = FLAGS[name](value)
        except ValueError:
            sys.stderr.write("ERROR: illegal value '%s' specified for flag '%s'\n" % (value, name))
            sys.exit(1)
    return flags


def batching_message() -> Any:
    """TF Serving's ``BatchingParameters`` (session_bundle_config.proto), declared here:
    tensorflow-serving-api does not ship that proto."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    fd = descriptor_pb2.FileDescriptorProto(
        name="eikit_standin/batching.proto",
        package="eikit_standin",
        dependency=[wrappers_pb2.DESCRIPTOR.name],
    )
    msg = fd.message_type.add(name="BatchingParameters")
    wrapped = [
        ("max_batch_size", 1, ".google.protobuf.Int64Value"),
        ("batch_timeout_micros", 2, ".google.protobuf.Int64Value"),
        ("max_enqueued_batches", 3, ".google.protobuf.Int64Value"),
        ("num_batch_threads", 4, ".google.protobuf.Int64Value"),
        ("thread_pool_name", 5, ".google.protobuf.StringValue"),
    ]
    optional, repeated = 1, 3
    for name, number, type_name in wrapped:
        msg.field.add(name=name, number=number, type=11, label=optional, type_name=type_name)
    msg.field.add(name="allowed_batch_sizes", number=6, type=3, label=repeated)
    msg.field.add(name="pad_variable_length_inputs", number=7, type=8, label=optional)
    pool = descriptor_pool.Default()
    pool.AddSerializedFile(fd.SerializeToString())
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("eikit_standin.BatchingParameters")
    )


def fail_start(message: str) -> None:
    sys.stderr.write("Failed to start server. Error: %s\n" % message)
    sys.stderr.flush()
    os._exit(255)


def main(argv: List[str]) -> int:
    flags = parse_flags(argv)
    if flags.get("version"):
        print("TensorFlow ModelServer: 0.0.0-eikit-standin\nTensorFlow Library: (stand-in)")
        return 0
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config_text = Path(flags["model_config_file"]).read_text()
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(config_text, config)
    except text_format.ParseError as exc:
        fail_start("Invalid argument: model config: %s" % exc)
    batching_text = None
    if flags.get("enable_batching"):
        batching_text = Path(flags["batching_parameters_file"]).read_text()
        try:
            text_format.Parse(batching_text, batching_message()())
        except text_format.ParseError as exc:
            fail_start("Invalid argument: batching parameters: %s" % exc)
    record = os.environ.get("EIKIT_STANDIN_RECORD")
    if record:
        Path(record).mkdir(parents=True, exist_ok=True)
        entry = {"pid": os.getpid(), "argv": argv, "config": config_text, "batching": batching_text}
        (Path(record) / ("%d.json" % os.getpid())).write_text(json.dumps(entry))

    import tensorflow as tf

    if flags.get("tensorflow_intra_op_parallelism"):
        tf.config.threading.set_intra_op_parallelism_threads(
            flags["tensorflow_intra_op_parallelism"]
        )
    if flags.get("tensorflow_inter_op_parallelism"):
        tf.config.threading.set_inter_op_parallelism_threads(
            flags["tensorflow_inter_op_parallelism"]
        )

    from standin_servables import Servables

    try:
        if os.environ.get("EIKIT_STANDIN_FAIL_LOAD"):
            raise RuntimeError(
                "Unknown: 1 servable(s) did not become available: {{{name: %s version: %d} due "
                "to error: Internal: EIKIT_STANDIN_FAIL_LOAD (a failed load the test asked for)}, }"
                % (
                    config.model_config_list.config[0].name,
                    config.model_config_list.config[0].model_version_policy.specific.versions[0],
                )
            )
        servables = Servables.load(config)
    except Exception as exc:
        fail_start(str(exc))
    print("loaded: %s" % servables.describe(), flush=True)
    time.sleep(float(os.environ.get("EIKIT_STANDIN_DELAY") or 0))  # a slow load
    if os.environ.get("EIKIT_STANDIN_HANG"):
        print("EIKIT_STANDIN_HANG: never opening the ports", flush=True)
        while True:
            time.sleep(3600)

    from standin_rest import serve_rest
    from standin_rpc import serve_grpc

    try:
        grpc_server = serve_grpc(servables, flags["port"])
        print("Running gRPC ModelServer at 0.0.0.0:%d ..." % flags["port"], flush=True)
        rest_port = flags.get("rest_api_port", 0)
        if rest_port:
            serve_rest(servables, rest_port)
            print("Exporting HTTP/REST API at:localhost:%d ..." % rest_port, flush=True)
    except (OSError, RuntimeError) as exc:
        fail_start("Unknown: %s" % exc)
    grpc_server.wait_for_termination()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main(sys.argv[1:]))
