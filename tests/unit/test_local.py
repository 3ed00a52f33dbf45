import io
import tarfile

import pytest

from eikit.errors import ConfigurationError
from eikit.local import extract_archive, layout_model_tree


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
            elif kind == "device":
                info.type = tarfile.CHRTYPE
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


@pytest.mark.parametrize(
    "members, message",
    [
        ([("../evil.py", "file", b"x")], "unsafe path"),
        ([("/etc/evil", "file", b"x")], "unsafe path"),
        ([("link", "symlink", "/etc/passwd")], "points outside"),
        ([("sub/link", "symlink", "../../x")], "points outside"),
        ([("dev", "device", None)], "device"),
    ],
)
def test_unsafe_archives_are_refused_before_anything_is_written(tmp_path, members, message):
    archive = make_tar(tmp_path / "bad.tar.gz", [("ok.txt", "file", b"fine")] + members)
    with pytest.raises(ConfigurationError, match=message):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_not_an_archive_is_a_clear_error(tmp_path):
    bogus = tmp_path / "model.tar.gz"
    bogus.write_bytes(b"not a tar")
    with pytest.raises(ConfigurationError, match="cannot read"):
        extract_archive(bogus, tmp_path / "out")
