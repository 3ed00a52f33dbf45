"""The default model_fn and prepare: what loads, onto which context, and the errors when
nothing loadable is there."""

from __future__ import annotations

import json

import mxnet as mx
import numpy as np
import pytest

from eikit.accelerators import ProbeResult
from eikit.errors import ConfigurationError
from eikit_mxnet.loading import find_model_files, read_data_shapes
from eikit_mxnet.session import MXNetSession
from tests.frameworks import expected
from tests.mxnet.models import (
    gluon_dense,
    mxnet_linear_module,
    save_gluon_linear,
    save_mxnet_linear,
)

ROWS = [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]
CPU = ProbeResult("cpu", True, "test", count=1)


@pytest.fixture
def session() -> MXNetSession:
    return MXNetSession(CPU, "cpu")


def predict(session: MXNetSession, model, rows=ROWS):
    out = session.predict_fn(session.input_fn(json.dumps(rows), "application/json"), model)
    return session.to_wire(out).tolist()


def test_a_module_checkpoint_loads_as_aws_default_model_fn_loads_it(session, tmp_path):
    save_mxnet_linear(tmp_path)
    model = session.model_fn(tmp_path)
    assert isinstance(model, mx.mod.Module)
    assert model.binded and not model.for_training
    # bound with batch size 1, as AWS's read_data_shapes(..., preferred_batch_size=1)
    assert [tuple(d.shape) for d in model.data_shapes] == [(1, 4)]
    assert predict(session, model) == expected(ROWS)
    assert predict(session, model, ROWS[:1]) == expected(ROWS[:1])


def test_shapes_file_batch_is_replaced_by_one(tmp_path):
    (tmp_path / "model-shapes.json").write_text(
        json.dumps([{"name": "data", "shape": [32, 3, 8, 8]}, {"name": "mask", "shape": [32]}])
    )
    names, shapes = read_data_shapes(tmp_path / "model-shapes.json")
    assert names == ["data", "mask"]
    assert shapes == [("data", (1, 3, 8, 8)), ("mask", (1,))]


def test_a_module_checkpoint_at_a_later_epoch_loads_the_latest(session, tmp_path):
    module = mxnet_linear_module()
    module.save_checkpoint(str(tmp_path / "model"), 0)
    arg, aux = module.get_params()
    arg["fc_bias"] = mx.nd.array([1.0, 1.0])
    module.set_params(arg, aux)
    module.save_checkpoint(str(tmp_path / "model"), 3)
    (tmp_path / "model-shapes.json").write_text('[{"name": "data", "shape": [1, 4]}]')
    files = find_model_files(tmp_path)
    assert (files.kind, files.epoch) == ("module", 3)
    answer = predict(session, session.model_fn(tmp_path))
    assert answer == [[r[0] + 1.0, r[1] + 0.5] for r in expected(ROWS)]


def test_a_gluon_export_loads_through_symbolblock_imports(session, tmp_path):
    save_gluon_linear(tmp_path)
    files = find_model_files(tmp_path)
    assert (files.kind, files.symbol.name, files.params.name) == (
        "gluon",
        "linear-symbol.json",
        "linear-0000.params",
    )
    model = session.model_fn(tmp_path)
    assert isinstance(model, mx.gluon.SymbolBlock)
    assert predict(session, model) == expected(ROWS)


def test_a_module_checkpoint_without_shapes_loads_as_a_symbol_block(session, tmp_path):
    mxnet_linear_module().save_checkpoint(str(tmp_path / "model"), 0)
    model = session.model_fn(tmp_path)
    assert isinstance(model, mx.gluon.SymbolBlock)
    assert predict(session, model) == expected(ROWS)


def test_nothing_loadable_names_what_was_found(session, tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0")
    (tmp_path / "model-symbol.json").write_text("{}")  # no params beside it
    (tmp_path / "code").mkdir()
    with pytest.raises(ConfigurationError) as raised:
        session.model_fn(tmp_path)
    message = str(raised.value)
    assert "model-symbol.json, weights.bin" in message
    assert "model-0000.params" in message and "model_fn" in message


def test_an_empty_or_missing_model_dir_is_a_clear_error(session, tmp_path):
    with pytest.raises(ConfigurationError, match="found: nothing"):
        session.model_fn(tmp_path)
    with pytest.raises(ConfigurationError, match="does not exist"):
        session.model_fn(tmp_path / "absent")


def test_two_gluon_exports_are_ambiguous(session, tmp_path):
    save_gluon_linear(tmp_path, "first")
    save_gluon_linear(tmp_path, "second")
    with pytest.raises(ConfigurationError, match="2 MXNet models"):
        session.model_fn(tmp_path)


def test_a_broken_shapes_file_or_params_file_is_a_configuration_error(session, tmp_path):
    save_mxnet_linear(tmp_path)
    (tmp_path / "model-shapes.json").write_text('{"data": [1, 4]}')
    with pytest.raises(ConfigurationError, match="model-shapes.json must be"):
        session.model_fn(tmp_path)
    (tmp_path / "model-shapes.json").write_text('[{"name": "data", "shape": [1, 4]}]')
    (tmp_path / "model-0000.params").write_bytes(b"not params")
    with pytest.raises(ConfigurationError, match="does not load"):
        session.model_fn(tmp_path)


# --- a user model_fn's model, put on the context by prepare ---------------------------


def test_prepare_keeps_a_module_already_on_the_context(session):
    module = mxnet_linear_module()
    assert session.prepare(module) is module
    assert predict(session, module) == expected(ROWS)


def test_prepare_rebinds_a_module_from_another_context(session):
    other = mx.Context("cpu", 1)
    module = mxnet_linear_module(other)
    placed = session.prepare(module)
    assert placed is not module and placed._context == [mx.cpu()]
    assert predict(session, placed) == expected(ROWS)


def test_prepare_refuses_an_unbound_module(session):
    module = mx.mod.Module(mx.sym.var("data"), label_names=None)
    with pytest.raises(ConfigurationError, match="not bound"):
        session.prepare(module)


@pytest.mark.parametrize("hybridize", [True, False])
def test_prepare_takes_a_gluon_block(session, hybridize):
    net = gluon_dense(hybridize)
    assert session.prepare(net) is net
    assert predict(session, net) == expected(ROWS)


def test_prepare_moves_a_block_to_the_context(session):
    net = gluon_dense()
    net.collect_params().reset_ctx(mx.Context("cpu", 1))
    session.prepare(net)
    assert {c for p in net.collect_params().values() for c in p.list_ctx()} == {mx.cpu()}


def test_prepare_refuses_a_block_never_initialized(session):
    with pytest.raises(ConfigurationError, match="not initialized"):
        session.prepare(mx.gluon.nn.Dense(2, in_units=4))


def test_other_models_pass_through_for_a_user_predict_fn(session):
    model = {"weights": np.ones(3)}
    assert session.prepare(model) is model
