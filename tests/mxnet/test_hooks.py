"""The default hooks: what each hands on (NDArrays on mx.cpu(), float32 as AWS's
``mx.nd.array`` makes them), and which failures are the client's."""

from __future__ import annotations

import io
import json

import mxnet as mx
import numpy as np
import pytest

from eikit import codecs
from eikit.accelerators import ProbeResult
from eikit.context import Context
from eikit.errors import BadRequest, InternalError
from eikit.user_module import validate
from eikit_mxnet.session import MXNetSession
from tests.frameworks import expected
from tests.mxnet.models import gluon_dense, mxnet_linear_module

ROWS = [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]
CPU = ProbeResult("cpu", True, "test", count=1)


@pytest.fixture
def session() -> MXNetSession:
    return MXNetSession(CPU, "cpu")


@pytest.fixture
def module(session):
    return session.prepare(mxnet_linear_module())


def npy(array) -> bytes:
    out = io.BytesIO()
    np.save(out, np.asarray(array))
    return out.getvalue()


@pytest.mark.parametrize(
    "body, content_type",
    [
        (json.dumps(ROWS), "application/json"),
        ("1,2,3,4\n5,6,7,8\n", "text/csv"),
        (npy(np.array(ROWS, dtype=np.float64)), "application/x-npy"),
        (npy(np.array(ROWS, dtype=np.int64)), "application/x-npy"),
        (b"[1, 2, 3, 4]\n[5, 6, 7, 8]\n", "application/jsonlines"),
    ],
)
def test_input_fn_gives_a_float32_ndarray_on_cpu(session, module, body, content_type):
    data = session.input_fn(body, content_type)
    assert isinstance(data, mx.nd.NDArray)
    assert data.context == mx.cpu() and data.dtype == np.float32  # mx.nd.array's default
    assert data.asnumpy().tolist() == ROWS


def test_predict_fn_returns_the_modules_ndarray(session, module):
    out = session.predict_fn(mx.nd.array(ROWS), module)
    assert isinstance(out, mx.nd.NDArray) and out.context == mx.cpu()
    assert out.asnumpy().tolist() == expected(ROWS)
    # a copy: the next forward does not change it
    session.predict_fn(mx.nd.array([[0, 0, 0, 0]]), module)
    assert out.asnumpy().tolist() == expected(ROWS)


def test_predict_fn_calls_a_block(session):
    net = session.prepare(gluon_dense())
    out = session.predict_fn(session.input_fn(json.dumps(ROWS), "application/json"), net)
    assert isinstance(out, mx.nd.NDArray)
    assert out.asnumpy().tolist() == expected(ROWS)


def test_predict_fn_takes_what_aws_user_input_fns_return(session, module):
    for data in (
        np.array(ROWS),
        ROWS,
        [mx.nd.array(ROWS)],
        mx.io.DataBatch([mx.nd.array(ROWS)]),
        # AWS's Module input_fn returned an NDArrayIter; Module.predict runs it, as there
        mx.io.NDArrayIter(mx.nd.array(ROWS), batch_size=1),
        {"data": mx.nd.array(ROWS)},
    ):
        out = session.predict_fn(data, module)
        assert out.asnumpy().tolist() == expected(ROWS), type(data)


def test_a_module_with_several_outputs_returns_a_list(session):
    data = mx.sym.var("data")
    group = mx.sym.Group([data * 2, mx.sym.sum(data, axis=1)])
    module = mx.mod.Module(group, data_names=["data"], label_names=None)
    module.bind(data_shapes=[("data", (1, 4))], for_training=False)
    module.init_params()
    out = session.predict_fn(mx.nd.array(ROWS), session.prepare(module))
    assert isinstance(out, list) and len(out) == 2
    wire = session.to_wire(out)
    assert wire[1].tolist() == [10.0, 26.0]
    body, media = session.output_fn(out, "application/json")
    assert json.loads(body)[1] == [10.0, 26.0] and media == "application/json"


def test_inputs_by_name_for_a_module_with_two_inputs(session):
    a, b = mx.sym.var("a"), mx.sym.var("b")
    module = mx.mod.Module(a - b, data_names=["a", "b"], label_names=None)
    module.bind(data_shapes=[("a", (1, 2)), ("b", (1, 2))], for_training=False)
    module.init_params()
    module = session.prepare(module)
    body = io.BytesIO()
    np.savez(body, b=np.array([[1.0, 1.0]]), a=np.array([[5.0, 7.0]]))  # keys out of order
    data = session.input_fn(body.getvalue(), "application/x-npz")
    assert set(data) == {"a", "b"}
    assert session.predict_fn(data, module).asnumpy().tolist() == [[4.0, 6.0]]
    with pytest.raises(BadRequest, match=r"takes 2 input\(s\) \(a, b\); the request has 1"):
        session.predict_fn(mx.nd.array([[1.0, 1.0]]), module)


def test_csv_is_reshaped_to_the_modules_input_as_aws_does(session):
    data = mx.sym.var("data")
    module = mx.mod.Module(mx.sym.sum(data, axis=(1, 2)), data_names=["data"], label_names=None)
    module.bind(data_shapes=[("data", (1, 2, 2))], for_training=False)
    module.init_params()
    session.prepare(module)
    array = session.input_fn("1,2,3,4\n5,6,7,8\n", "text/csv")
    assert array.shape == (2, 2, 2)
    assert session.predict_fn(array, module).asnumpy().tolist() == [10.0, 26.0]
    with pytest.raises(BadRequest, match="does not reshape"):
        session.input_fn("1,2,3\n", "text/csv")


def test_one_csv_row_is_one_record(session, module):
    assert session.input_fn("1,2,3,4\n", "text/csv").shape == (1, 4)
    session.prepare(gluon_dense())
    assert session.input_fn("1,2,3,4\n", "text/csv").shape == (1, 4)


@pytest.mark.parametrize(
    "data, message",
    [
        ([[1.0, 2.0, 3.0]], "cannot take the request's input (shape [1, 3] float32)"),
        ([[1, 2], [3]], "not a rectangular array"),
        ([["a", "b", "c", "d"]], "must be numbers"),
        ([], "holds no values"),
        ([[]], "holds no values"),
    ],
)
@pytest.mark.parametrize("kind", ["module", "block"])
def test_requests_the_model_cannot_take_are_400(session, data, message, kind):
    model = session.prepare(mxnet_linear_module() if kind == "module" else gluon_dense())
    with pytest.raises(BadRequest) as raised:
        session.predict_fn(session.to_input(codecs.decode_json(json.dumps(data).encode())), model)
    assert message in str(raised.value)
    assert "Traceback" not in str(raised.value)
    if kind == "module" and "cannot take" in message:
        assert str(raised.value).endswith("(the model takes data [batch, 4])")
    # and the model still serves
    assert session.predict_fn(mx.nd.array(ROWS), model).asnumpy().tolist() == expected(ROWS)


def test_bytes_need_a_user_input_fn(session, module):
    with pytest.raises(BadRequest, match="define input_fn"):
        session.input_fn(b"\x00\x01", "application/octet-stream")


def test_a_model_of_another_type_needs_a_user_predict_fn(session):
    with pytest.raises(InternalError, match="define predict_fn"):
        session.predict_fn(mx.nd.array(ROWS), {"not": "a model"})


def test_output_fn_takes_ndarrays_arrays_and_lists(session):
    for prediction in (mx.nd.array(ROWS), np.array(ROWS), ROWS, (mx.nd.array(ROWS),)):
        body, media = session.output_fn(prediction, "application/json")
        answer = json.loads(body)
        assert (answer[0] if isinstance(prediction, tuple) else answer) == ROWS
    body, media = session.output_fn(mx.nd.array(ROWS), "text/csv")
    assert body == b"1.0,2.0,3.0,4.0\n5.0,6.0,7.0,8.0\n" and media == "text/csv"
    body, _ = session.output_fn(mx.nd.array(ROWS), "application/x-npy")
    assert np.load(io.BytesIO(body)).dtype == np.float32


def test_a_user_input_fn_with_a_model_parameter_gets_the_model(session, tmp_path):
    """AWS's MXNetModuleTransformer: input_fn(input_data, content_type, model)."""
    seen = {}

    def input_fn(input_data, content_type, model):
        seen["model"] = model
        return mx.nd.array(json.loads(input_data))

    def model_fn(model_dir):
        return mxnet_linear_module()

    hooks = validate("inference", {"input_fn": input_fn, "model_fn": model_fn})
    context = Context(str(tmp_path), "cpu", "cpu", None)
    pipeline = session.make_pipeline(hooks, context, "application/json")
    pipeline.load()
    result = pipeline.invoke(json.dumps(ROWS).encode(), "application/json", None, b"")
    assert json.loads(result.body) == expected(ROWS)
    assert seen["model"] is pipeline.model


def test_no_user_hooks_compose_the_default_hooks(session, tmp_path):
    from tests.frameworks import save_mxnet_linear

    save_mxnet_linear(tmp_path)
    pipeline = session.make_pipeline(
        validate(None, {}), Context(str(tmp_path), "cpu", "cpu", None), "application/json"
    )
    pipeline.load()
    for body, content_type in (
        (json.dumps(ROWS).encode(), "application/json"),
        (npy(ROWS), "application/x-npy"),
    ):
        result = pipeline.invoke(body, content_type, "text/csv", b"")
        assert result.body == b"1.0,9.5\n5.0,21.5\n"
