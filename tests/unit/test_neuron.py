"""eikit.neuron: the dated facts, host discovery and core pinning, the manifest and the batch
plan, the advice for advise and the migration, and what `eikit detect` says. No framework,
no Neuron package, no device: the host is a stand-in (tests/neuron_host.py)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import List, Optional

import pytest

from eikit.compile.command import compile_command, not_compiled_message
from eikit.errors import BatchTooLarge, ConfigurationError
from eikit.neuron import facts
from eikit.neuron.advice import migration_notes, target_advice
from eikit.neuron.host import discover, parse_cores, pinning, visible_cores
from eikit.neuron.manifest import (
    MANIFEST_NAME,
    Compiled,
    InputSpec,
    Manifest,
    compiled_for,
    plan_batches,
    write_manifest,
)
from eikit.neuron.status import neuron_status, status_lines
from tests.neuron_host import fake_neuron_host

# --- facts ----------------------------------------------------------------------------------


def test_every_fact_says_where_it_comes_from_and_when_it_was_read() -> None:
    sources = [g.state_source for g in facts.GENERATIONS.values()]
    sources += [g.guardrails_source for g in facts.GENERATIONS.values()]
    sources += [s.source for s in facts.SUPPORT.values()]
    sources += [facts.NEO, facts.COMPILE_ANYWHERE, facts.FIXED_SHAPES, facts.EI_GUIDANCE]
    for source in sources:
        cite = source.cite()
        assert source.where and source.checked == "2026-12-06"
        if source.verified:
            assert "(read 2026-12-06)" in cite
        else:
            assert "as stated in issue 17, not independently verified" in cite


def test_the_two_generations_share_nothing_at_run_time() -> None:
    inf1, inf2 = facts.GENERATIONS["inf1"], facts.GENERATIONS["inf2"]
    assert (inf1.module, inf1.compiler, inf1.neuron_core) == ("torch_neuron", "neuron-cc", "v1")
    assert (inf2.module, inf2.compiler, inf2.neuron_core) == ("torch_neuronx", "neuronx-cc", "v2")
    assert facts.generation_of_family("inf1") is inf1
    assert facts.generation_of_family("trn1") is inf2 and facts.generation_of_family("inf2") is inf2
    assert facts.generation_of_family("c5") is None
    with pytest.raises(ValueError, match="TorchNeuron"):
        facts.generation_of_family("trn2")
    # the XLA line that supports Inf2, not the native TorchNeuron of the same name
    assert facts.SUPPORT[("pytorch", "inf2")].requirements[0] == "torch-neuronx==2.9.0.2.15.32035"
    assert facts.SUPPORT[("pytorch", "inf1")].requirements[0] == "torch-neuron==1.13.1.2.11.13.0"
    assert not inf1.guardrails and inf2.guardrails


# --- host discovery and pinning ----------------------------------------------------------


def test_cores_and_generation_come_from_sysfs(tmp_path: Path) -> None:
    dev, sysfs = fake_neuron_host(tmp_path, devices=2, cores=4, instance_type="Inf1")
    (dev / "neuron_extra").touch()  # not a device node name
    host = discover(dev, sysfs, neuron_ls=None)
    assert host.devices == ["neuron0", "neuron1"] and host.cores_per_device == [4, 4]
    assert host.generation == "inf1" and host.visible == list(range(8))
    assert "core_count" in host.source


def test_cores_from_neuron_ls_when_sysfs_has_none(tmp_path: Path) -> None:
    dev, sysfs = fake_neuron_host(tmp_path, devices=2, cores=None, instance_type="Inf2")
    listing = json.dumps([{"neuron_device": 0, "nc_count": 2}, {"neuron_device": 1, "nc_count": 2}])
    host = discover(dev, sysfs, neuron_ls=lambda: listing)
    assert host.cores_per_device == [2, 2] and host.source == "neuron-ls --json-output"
    assert host.generation == "inf2"


def test_cores_from_the_generation_when_nothing_says(tmp_path: Path) -> None:
    dev, sysfs = fake_neuron_host(tmp_path, devices=1, cores=None, instance_type="Trn1")
    host = discover(dev, sysfs, neuron_ls=lambda: None)
    assert host.cores_per_device == [2] and "per inf2 chip" in host.source
    dev, sysfs = fake_neuron_host(tmp_path / "b", devices=1, cores=None, instance_type=None)
    host = discover(dev, sysfs, neuron_ls=None)
    assert host.generation is None and host.cores_per_device == [1]


def test_no_devices_no_cores(tmp_path: Path) -> None:
    host = discover(tmp_path, tmp_path, neuron_ls=None, visible_setting="0-3")
    assert host.devices == [] and host.visible == []


def test_visible_cores_narrow_what_workers_get() -> None:
    assert parse_cores("0-3") == [0, 1, 2, 3]
    assert parse_cores("1,4-5, 2") == [1, 2, 4, 5]
    assert visible_cores(None, 4) == [0, 1, 2, 3]
    assert visible_cores("1,3", 4) == [1, 3]
    with pytest.raises(ConfigurationError, match="names core\\(s\\) 4"):
        visible_cores("2-4", 4)
    for bad in ("a", "3-1", ",", "1-"):
        with pytest.raises(ConfigurationError, match="NEURON_RT_VISIBLE_CORES"):
            parse_cores(bad)


def test_each_worker_is_pinned_to_its_own_core() -> None:
    cores = [1, 3]
    pins = [pinning(cores, worker) for worker in range(4)]
    assert [p["NEURON_RT_VISIBLE_CORES"] for p in pins] == ["1", "3", "1", "3"]
    assert {p["NEURON_RT_NUM_CORES"] for p in pins} == {"1"}


# --- manifest and batch plan ---------------------------------------------------------------


def entry(generation: str = "inf1", sizes: Optional[List[int]] = None) -> Compiled:
    sizes = sizes or [1, 4, 8]
    return Compiled(
        generation=generation,
        batch_sizes=sizes,
        graphs={b: "neuron/%s/model-b%d.pt" % (generation, b) for b in sizes},
        inputs=[InputSpec([4], "float32")],
        package="torch-neuron",
        package_version="1.13.1.2.11.13.0",
        compiler="neuron-cc",
        compiler_version="1.24.0.0",
        framework_version="1.13.1",
        parity={"checked": True, "max_abs_error": 0.0},
        how="in-process",
    )


def test_the_manifest_says_what_is_compiled_for_which_generation(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.pt").write_bytes(b"x")
    assert compiled_for(model, "inf1") is None
    manifest = Manifest("pytorch", "model.pt", "0" * 64, {"inf1": entry()})
    write_manifest(model, manifest)
    found = compiled_for(model, "inf1")
    assert found is not None and found.batch_sizes == [1, 4, 8]
    assert found.inputs[0].describe() == "[N, 4] float32"
    assert compiled_for(model, "inf2") is None
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(str(archive), "w:gz") as tar:
        tar.add(str(model / "model.pt"), "model.pt")
        tar.add(str(model / MANIFEST_NAME), MANIFEST_NAME)
    assert compiled_for(archive, "inf1") is not None and compiled_for(archive, "inf2") is None
    (model / MANIFEST_NAME).write_text('{"format": 1, "compiled": {"inf9": {}}}')
    with pytest.raises(ConfigurationError, match="not a valid eikit Neuron manifest"):
        compiled_for(model, "inf1")


def test_a_request_runs_on_the_smallest_compiled_size_that_holds_it() -> None:
    assert plan_batches(1, [1, 4, 8], True) == [(1, 1)]
    assert plan_batches(3, [1, 4, 8], True) == [(3, 4)]
    assert plan_batches(8, [1, 4, 8], True) == [(8, 8)]
    assert plan_batches(19, [1, 4, 8], True) == [(8, 8), (8, 8), (3, 4)]
    assert plan_batches(17, [8, 4, 1], True) == [(8, 8), (8, 8), (1, 1)]


def test_a_request_larger_than_every_size_is_refused_naming_them_when_not_split() -> None:
    assert plan_batches(8, [1, 4, 8], False) == [(8, 8)]
    with pytest.raises(BatchTooLarge) as caught:
        plan_batches(9, [1, 4, 8], False)
    assert caught.value.status == 413
    assert "9 records" in str(caught.value) and "batch sizes 1, 4, 8" in str(caught.value)


# --- the compile command, the advice, the migration's notes -------------------------------


def test_the_compile_command_is_exact() -> None:
    assert compile_command("/opt/ml/model", "inf1") == (
        "eikit compile /opt/ml/model --generation inf1 --example REQUEST.json "
        "--output model-inf1.tar.gz"
    )
    message = not_compiled_message("/opt/ml/model", "inf2", "v2")
    assert compile_command("/opt/ml/model", "inf2") in message
    assert "\n" not in message  # one log line


def test_inf1_and_inf2_name_different_images_and_how_the_model_gets_compiled() -> None:
    inf1 = target_advice("ml.inf1.xlarge", "pytorch")
    inf2 = target_advice("ml.inf2.xlarge", "pytorch")
    assert inf1 is not None and inf2 is not None
    assert (inf1.image_tag, inf2.image_tag) == ("pytorch-1.13-inf1-py310", "pytorch-2.9-inf2-py312")
    assert "torch-neuron / neuron-cc" in inf1.needs[0] and "--generation inf1" in inf1.needs[0]
    assert "torch-neuronx / neuronx-cc" in inf2.needs[0] and "ml_inf2" in inf2.needs[0]
    assert inf1.state == "frozen" and inf2.state == "supported"
    assert inf1.guardrails and "all-at-once" in inf1.guardrails and inf2.guardrails is None
    assert target_advice("ml.c5.xlarge", "pytorch") is None


def test_mxnet_on_inf2_is_a_dead_end_naming_what_works() -> None:
    advice = target_advice("ml.inf2.xlarge", "mxnet")
    assert advice is not None and advice.state == "never"
    assert advice.dead_end and "mxnet on inf1 (frozen)" in advice.dead_end
    assert migration_notes("ml.inf2.xlarge", "mxnet", None) == [
        "ml.inf2.xlarge: " + advice.dead_end
    ]


def test_migration_notes_say_whether_the_archive_is_compiled_for_the_target() -> None:
    notes = migration_notes("ml.inf1.xlarge", "pytorch", None)
    assert "pytorch-1.13-inf1-py310" in notes[0]
    assert "not compiled for Neuron" in notes[1] and "--compile" in notes[1]
    assert any("guardrails" in n for n in notes) and any("frozen" in n for n in notes)
    notes = migration_notes("ml.inf2.xlarge", "pytorch", ["inf1"])
    assert "compiled for inf1 only" in notes[1] and "--generation inf2" in notes[1]
    notes = migration_notes("ml.inf2.xlarge", "pytorch", ["inf1", "inf2"])
    assert "is compiled for inf2" in notes[1]
    assert migration_notes("ml.c6i.xlarge", "pytorch", None) == []


# --- eikit detect -------------------------------------------------------------------------


def test_detect_shows_generation_cores_and_whether_the_model_is_compiled(tmp_path: Path) -> None:
    dev, sysfs = fake_neuron_host(tmp_path, devices=1, cores=4, instance_type="Inf1")
    model = tmp_path / "model"
    model.mkdir()
    assert neuron_status(tmp_path / "none", sysfs, None, model, None) is None
    status = neuron_status(dev, sysfs, None, model, None)
    assert status is not None
    lines = status_lines(status)
    assert lines[0].startswith("neuron: inf1 (Inf1, NeuronCore v1), 1 device(s), 4 core(s)")
    assert "0,1,2,3" in lines[1]
    assert lines[2] == "model compiled for this host: no (no eikit-neuron.json in %s)" % model
    assert compile_command(str(model), "inf1") in lines[3]
    write_manifest(model, Manifest("pytorch", "model.pt", "0" * 64, {"inf2": entry("inf2")}))
    status = neuron_status(dev, sysfs, "1,2", model, None)
    assert status is not None and status["cores"] == [1, 2]
    assert status["model"]["compiled_for_this_host"] is False
    assert "compiled for inf2 only" in status_lines(status)[2]
    write_manifest(model, Manifest("pytorch", "model.pt", "0" * 64, {"inf1": entry()}))
    status = neuron_status(dev, sysfs, None, model, None)
    assert status is not None and status["model"]["compiled_for_this_host"] is True
    assert status_lines(status)[2].startswith("model compiled for this host: yes, inf1")
