"""eikit's stand-in for sagemaker-inference: what scripts import from AWS's containers."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from eikit.errors import client_message, code_of, status_of
from eikit.user_module import COMPAT_DIR


@pytest.fixture
def toolkit(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(COMPAT_DIR))
    for name in [name for name in sys.modules if name.startswith("sagemaker_inference")]:
        monkeypatch.delitem(sys.modules, name)
    import sagemaker_inference.decoder
    import sagemaker_inference.encoder
    import sagemaker_inference.errors

    return sagemaker_inference


def test_decode_and_encode_as_sagemaker_inference_does(toolkit) -> None:
    decoder, encoder = toolkit.decoder, toolkit.encoder
    assert decoder.decode("[[1, 2], [3, 4]]", "application/json").tolist() == [[1, 2], [3, 4]]
    assert decoder.decode(b"1,2,3\n", "text/csv").shape == (3,)  # genfromtxt: one row is 1-D
    # genfromtxt with dtype=None, as AWS calls it: the cells decide the dtype
    assert decoder.decode("1,2\n3,4", "text/csv").tolist() == [[1, 2], [3, 4]]
    assert decoder.decode("1.5,2.5\n3,4", "text/csv").dtype == np.float64
    assert encoder.encode(np.array([[1.5, 2]]), "text/csv") == "1.5,2.0\n"
    assert encoder.encode(np.float32(2.5), "application/json") == "2.5"
    npy = encoder.encode([1.0, 2.0], "application/x-npy")
    assert np.load(io.BytesIO(npy)).tolist() == [1.0, 2.0]
    assert decoder.decode(npy, "application/x-npy").tolist() == [1.0, 2.0]
    with pytest.raises(toolkit.errors.UnsupportedFormatError, match="image/png"):
        decoder.decode(b"", "image/png")
    with pytest.raises(toolkit.errors.UnsupportedFormatError):
        encoder.encode([1], "image/png")


def test_an_npy_body_is_never_unpickled(toolkit) -> None:
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(Exception) as refused:
        toolkit.decoder.decode(pickled.getvalue(), "application/x-npy")
    assert status_of(refused.value) == 400


def test_toolkit_errors_carry_their_status_to_the_client(toolkit) -> None:
    errors = toolkit.errors
    generic = errors.GenericInferenceToolkitError(404, "no such user")
    assert (status_of(generic), code_of(generic), client_message(generic)) == (
        404,
        "inference_error",
        "no such user",
    )
    assert status_of(errors.GenericInferenceToolkitError(200)) == 500  # not an error status
    assert status_of(errors.ClientError("plain")) == 500  # AWS's transformer: a 500 too


def test_an_installed_sagemaker_inference_wins_over_the_stand_in(tmp_path: Path) -> None:
    real = tmp_path / "site" / "sagemaker_inference"
    real.mkdir(parents=True)
    (real / "__init__.py").write_text("REAL = True\n")
    code = tmp_path / "code"
    code.mkdir()
    probe = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, %r)
        from pathlib import Path
        from eikit.user_module import prepare_path
        prepare_path(Path(%r))
        import sagemaker_inference
        print(getattr(sagemaker_inference, "REAL", False))
        """
        % (str(real.parent), str(code))
    )
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert shown.stdout.strip() == "True", shown.stderr
    alone = probe.replace("sys.path.insert(0, %r)" % str(real.parent), "")
    shown = subprocess.run([sys.executable, "-c", alone], capture_output=True, text=True)
    assert shown.stdout.strip() == "False", shown.stderr
