import textwrap

import pytest

from eikit.errors import UserScriptError
from eikit.user_module import check_hook, load_user_hooks


def write(tmp_path, source, name="inference.py"):
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / name).write_text(textwrap.dedent(source))
    return code


def test_context_is_detected_once_from_the_signature():
    def plain(model_dir):
        return model_dir

    def with_context(model_dir, context):
        return (model_dir, context)

    assert check_hook("model_fn", plain)("d", context="c") == "d"
    assert check_hook("model_fn", with_context)("d", context="c") == ("d", "c")
    assert check_hook("model_fn", lambda model_dir, context=None: context)("d", context="c") == "c"


def test_wrong_arity_is_a_clear_error():
    with pytest.raises(UserScriptError, match="predict_fn.*must take 2"):
        check_hook("predict_fn", lambda data: data)
    with pytest.raises(UserScriptError, match="not callable"):
        check_hook("input_fn", 3)


def test_transform_fn_with_another_handler_is_rejected(tmp_path):
    code = write(
        tmp_path,
        """
        def transform_fn(model, data, content_type, accept):
            return data
        def input_fn(data, content_type):
            return data
        """,
    )
    with pytest.raises(UserScriptError, match="transform_fn.*input_fn"):
        load_user_hooks(code, "inference.py")


def test_script_is_imported_from_code_dir_with_lib_on_path(tmp_path):
    code = write(
        tmp_path,
        """
        import helper_lib
        def model_fn(model_dir):
            return helper_lib.VALUE
        """,
        name="serve_me.py",
    )
    (code / "lib").mkdir()
    (code / "lib" / "helper_lib.py").write_text("VALUE = 42\n")
    from eikit.user_module import prepare_path

    prepare_path(code)
    hooks = load_user_hooks(code, "serve_me")
    assert hooks.get("model_fn")("x") == 42


def test_import_error_names_the_script(tmp_path):
    code = write(tmp_path, "raise RuntimeError('boom')\n")
    with pytest.raises(UserScriptError, match="inference.py failed: RuntimeError: boom"):
        load_user_hooks(code, "inference.py")


def test_missing_script_means_default_hooks(tmp_path):
    assert load_user_hooks(tmp_path / "code", "inference.py").hooks == {}
