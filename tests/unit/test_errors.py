from eikit.errors import InferenceError, client_message, code_of, status_of


def test_user_status_is_kept_when_valid_and_replaced_when_not():
    assert InferenceError("x", status=422).status == 422
    bad = InferenceError("x", status=200)
    assert bad.status == 500 and "invalid status" in bad.message


def test_out_of_memory_is_507():
    assert status_of(MemoryError()) == 507
    assert status_of(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")) == 507
    assert code_of(MemoryError()) == "insufficient_memory"
    assert status_of(ValueError("nope")) == 500


def test_client_message_keeps_framework_tracebacks_out():
    error = RuntimeError(
        "The following operation failed\nTraceback of TorchScript:\n  ...\nshape mismatch"
    )
    assert client_message(error) == "RuntimeError: shape mismatch"
