"""AWS's rule for ``code/requirements.txt`` beside ``code/lib``, per container, and a model
``code/`` folder that holds both, for the single- and multi-model contract suites.

The TensorFlow Serving container loads lib/ and ignores requirements.txt (serve.py: "loading
modules in ..., ignoring requirements.txt"; its test5); sagemaker-inference, which AWS's
PyTorch and MXNet containers start from, installs requirements.txt whenever it exists
(model_server.py)."""

from __future__ import annotations

from pathlib import Path

from tests.serving import make_wheel

SKIPS_REQUIREMENTS_BESIDE_LIB = {"tensorflow": True, "pytorch": False, "mxnet": False}


def write_code_with_lib_and_requirements(code: Path, framework: str) -> Path:
    """``code/inference.py`` importing a module from ``code/lib``, and a requirements.txt
    naming a local wheel (module ``eikit_req_probe``); returns the requirements file."""
    code.mkdir(parents=True, exist_ok=True)
    source = "import eikit_lib_probe  # from code/lib\n"
    if framework == "tensorflow":  # its container wants handlers in a script
        source += (
            "def input_handler(data, context):\n    return data.read().decode('utf-8')\n"
            "def output_handler(response, context):\n"
            "    return response.content, context.accept_header\n"
        )
    (code / "inference.py").write_text(source)
    (code / "lib").mkdir()
    (code / "lib" / "eikit_lib_probe.py").write_text("VENDORED = True\n")
    wheel = make_wheel(code, "eikit_req_probe")
    requirements = code / "requirements.txt"
    requirements.write_text("./%s\n" % wheel.name)
    return requirements
