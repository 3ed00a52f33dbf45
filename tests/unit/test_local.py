import io
import os
import tarfile
from collections import namedtuple

import pytest

from eikit import archive as archive_module
from eikit.cli import main
from eikit.errors import ConfigurationError
from eikit.local import WORK_MARKER, extract_archive, layout_model_tree


def make_tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = payload
                tar.addfile(info)
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = payload
                tar.addfile(info)
            elif kind == "device":
                info.type = tarfile.CHRTYPE
                tar.addfile(info)
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
                tar.addfile(info)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
    return path


def test_layout_links_instead_of_copying(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.pt").write_bytes(b"x" * 1024)
    code = tmp_path / "src"
    code.mkdir()
    (code / "inference.py").write_text("")
    base = layout_model_tree(model, code, tmp_path / "base")
    assert (base / "model" / "model.pt").is_symlink()
    assert (base / "model" / "model.pt").resolve() == (model / "model.pt").resolve()
    assert (base / "model" / "code" / "inference.py").exists()
    # A second layout replaces the first (code dir dropped here).
    base = layout_model_tree(model, None, tmp_path / "base")
    assert not (base / "model" / "code").exists()


def test_model_tar_gz_is_extracted_once(tmp_path):
    archive = make_tar(
        tmp_path / "model.tar.gz",
        [("model.pt", "file", b"weights"), ("code/inference.py", "file", b"")],
    )
    base = layout_model_tree(archive, None, tmp_path / "base")
    assert (base / "model" / "model.pt").read_bytes() == b"weights"
    assert (base / "model" / "code" / "inference.py").exists()
    extracted = [p for p in (tmp_path / "base").iterdir() if p.name.startswith("extracted-")]
    assert len(extracted) == 1
    layout_model_tree(archive, None, tmp_path / "base")
    assert [
        p for p in (tmp_path / "base").iterdir() if p.name.startswith("extracted-")
    ] == extracted


@pytest.fixture(params=["stdlib filter", "no stdlib filter"])
def filters(request, monkeypatch):
    """Run a test with tarfile.data_filter and without it, as on Pythons that lack it."""
    if request.param == "no stdlib filter":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    return request.param


def _everything(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


UNSAFE = [
    ([("../evil.py", "file", b"x")], "unsafe path"),
    ([("/etc/evil", "file", b"x")], "unsafe path"),
    ([("link", "symlink", "/etc/passwd")], "points outside"),
    ([("sub/link", "symlink", "../../x")], "points outside"),
    # a chain of relative links, each harmless on its own: d1/d2/x is the root, so
    # y = root/.. is the folder above it
    ([("d1/d2/x", "symlink", "../.."), ("y", "symlink", "d1/d2/x/..")], "points outside"),
    ([("a", "symlink", "b"), ("b", "symlink", "c/../../out")], "points outside"),
    ([("a", "symlink", "b"), ("b", "symlink", "a")], "points outside"),  # a loop
    # writing through a link that points inside is refused too
    ([("sub", "dir", None), ("l", "symlink", "sub"), ("l/x", "file", b"x")], "through a symlink"),
    ([("l", "symlink", "ok.txt"), ("l", "file", b"x")], "appears twice"),
    ([("h", "hardlink", "../outside")], "hard link"),
    ([("h", "hardlink", "missing.txt")], "hard link"),
    ([("h", "hardlink", "later.txt"), ("later.txt", "file", b"x")], "hard link"),
    ([("s", "symlink", "/etc/passwd"), ("h", "hardlink", "s")], "points outside"),
    ([("dev", "device", None)], "device"),
    ([("pipe", "fifo", None)], "fifo"),
]


@pytest.mark.parametrize("members, message", UNSAFE)
def test_unsafe_archives_are_refused_before_anything_is_written(
    tmp_path, filters, members, message
):
    archive = make_tar(tmp_path / "bad.tar.gz", [("ok.txt", "file", b"fine")] + members)
    before = _everything(tmp_path)
    with pytest.raises(ConfigurationError, match=message):
        extract_archive(archive, tmp_path / "deep" / "out")
    assert _everything(tmp_path) == before  # no folder, no .partial, no temporary


def test_links_that_stay_inside_are_extracted(tmp_path, filters):
    archive = make_tar(
        tmp_path / "model.tar.gz",
        [
            ("weights/model.pt", "file", b"w"),
            ("model.pt", "symlink", "weights/model.pt"),
            ("code/current", "symlink", "../weights"),
            ("chain", "symlink", "code/current/model.pt"),
            ("copy.pt", "hardlink", "weights/model.pt"),
        ],
    )
    out = extract_archive(archive, tmp_path / "out")
    for name in ("model.pt", "chain", "copy.pt", "code/current/model.pt"):
        assert (out / name).read_bytes() == b"w"
    assert (out / "chain").is_symlink()


def test_a_failure_while_extracting_leaves_nothing_behind(tmp_path, monkeypatch):
    archive = make_tar(
        tmp_path / "model.tar.gz", [("a.txt", "file", b"a"), ("b.txt", "file", b"b")]
    )
    real = tarfile.TarFile.extract

    def extract(self, member, *args, **kwargs):
        if getattr(member, "name", member) == "b.txt":
            raise OSError(28, "No space left on device")
        return real(self, member, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "extract", extract)
    before = _everything(tmp_path)
    with pytest.raises(ConfigurationError, match="No space left"):
        extract_archive(archive, tmp_path / "new" / "out")
    assert _everything(tmp_path) == before


def test_an_archive_larger_than_the_free_space_is_refused(tmp_path, monkeypatch):
    archive = make_tar(tmp_path / "model.tar.gz", [("model.pt", "file", b"x" * 4096)])
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(archive_module.shutil, "disk_usage", lambda path: usage(1, 1, 1024))
    with pytest.raises(ConfigurationError, match="MB to extract"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_not_an_archive_is_a_clear_error(tmp_path):
    bogus = tmp_path / "model.tar.gz"
    bogus.write_bytes(b"not a tar")
    with pytest.raises(ConfigurationError, match="cannot read"):
        extract_archive(bogus, tmp_path / "out")


def test_a_refused_archive_leaves_no_work_dir(tmp_path):
    archive = make_tar(tmp_path / "model.tar.gz", [("link", "symlink", "/etc/passwd")])
    with pytest.raises(ConfigurationError, match="points outside"):
        layout_model_tree(archive, None, tmp_path / "work" / "base")
    assert not (tmp_path / "work").exists()


def _user_model(folder):
    model = folder / "model"
    model.mkdir(parents=True)
    (model / "model.pt").write_bytes(b"the user's weights")
    return model


def test_work_dir_dot_next_to_the_model_never_deletes_it(tmp_path, monkeypatch, capsys):
    model = _user_model(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["local", "--model-dir", "model", "--work-dir", "."]) == 2
    assert "--work-dir" in capsys.readouterr().err
    assert (model / "model.pt").read_bytes() == b"the user's weights"
    assert _everything(tmp_path) == ["model", "model/model.pt"]


@pytest.mark.parametrize("where", [".", "model", "model/inside"])
def test_a_work_dir_holding_or_inside_the_model_is_refused(tmp_path, where):
    model = _user_model(tmp_path)
    with pytest.raises(ConfigurationError, match="must not be, hold or lie inside"):
        layout_model_tree(model, None, tmp_path / where)
    assert _everything(tmp_path) == ["model", "model/model.pt"]


def test_a_work_dir_holding_the_code_dir_is_refused(tmp_path):
    model = _user_model(tmp_path / "m")
    code = tmp_path / "w" / "code"
    code.mkdir(parents=True)
    with pytest.raises(ConfigurationError, match="must not be, hold or lie inside"):
        layout_model_tree(model, code, tmp_path / "w")


def test_a_folder_eikit_did_not_make_is_refused_and_kept(tmp_path):
    model = _user_model(tmp_path / "src")
    work = tmp_path / "work"
    (work / "model").mkdir(parents=True)
    (work / "model" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigurationError, match="not empty and was not made by eikit"):
        layout_model_tree(model, None, work)
    assert (work / "model" / "notes.txt").read_text() == "mine"
    # eikit's own cache folder (an older eikit made it without the marker) is adopted, but a
    # file eikit did not lay out in it is still never removed
    with pytest.raises(ConfigurationError, match="notes.txt"):
        layout_model_tree(model, None, work, owned=True)
    assert (work / "model" / "notes.txt").read_text() == "mine"


def test_a_new_or_empty_work_dir_is_marked_and_replaced_on_the_next_run(tmp_path):
    model = _user_model(tmp_path / "src")
    for work in (tmp_path / "new", tmp_path / "empty"):
        if work.name == "empty":
            work.mkdir()
        layout_model_tree(model, None, work)
        assert (work / WORK_MARKER).is_file()
        assert (work / "model" / "model.pt").read_bytes() == b"the user's weights"
        (model / "extra.bin").write_bytes(b"")
        layout_model_tree(model, None, work)  # a marked folder is eikit's: laid out again
        assert (work / "model" / "extra.bin").is_symlink()
        os.remove(str(model / "extra.bin"))
    # a file someone put into eikit's model/ is kept, and the layout refused
    (tmp_path / "new" / "model" / "added.txt").write_text("keep")
    with pytest.raises(ConfigurationError, match="added.txt"):
        layout_model_tree(model, None, tmp_path / "new")
    assert (tmp_path / "new" / "model" / "added.txt").read_text() == "keep"
    assert (model / "model.pt").read_bytes() == b"the user's weights"
