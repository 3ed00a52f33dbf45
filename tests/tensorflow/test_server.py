"""Requests as AWS's TensorFlow Serving container takes them, against one real server on
two named models (``half_plus_three`` versions 123 and 124, ``scaled`` versions 1, 2 and
10): every body form, every custom attribute, and the errors naming what exists. The
expected answers are those AWS's container tests assert
(``test/integration/local/test_container.py``) where they cover the case."""

from __future__ import annotations

from typing import Iterator

import pytest
import requests

from tests.serving import Endpoint
from tests.tensorflow.helpers import post, served
from tests.tensorflow.models import save_tree

HALF = "tfs-model-name=half_plus_three"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    with served(tmp_path_factory.mktemp("tf-server"), save_tree) as server:
        yield server


def ok(response: requests.Response) -> object:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


# --- TF Serving REST bodies --------------------------------------------------------------


def test_instances_go_to_the_default_model_the_first_found(endpoint):
    # AWS: the first model found is the default; here, in name order: half_plus_three.
    assert ok(post(endpoint, {"instances": [1.0, 2.0, 5.0]})) == {"predictions": [3.5, 4.0, 5.5]}


def test_two_instances(endpoint):
    body = {"instances": [[1.0, 2.0, 5.0], [1.0, 2.0, 5.0]]}
    assert ok(post(endpoint, body)) == {"predictions": [[3.5, 4.0, 5.5], [3.5, 4.0, 5.5]]}


def test_columnar_inputs_answer_outputs(endpoint):
    assert ok(post(endpoint, {"inputs": [1.0, 2.0]})) == {"outputs": [3.5, 4.0]}
    body = {"inputs": {"x": [[1.0], [3.0]]}}
    assert ok(post(endpoint, body, attributes=HALF)) == {"outputs": [[3.5], [4.5]]}


def test_signature_name_with_several_outputs_in_both_forms(endpoint):
    attributes = "tfs-model-name=scaled"
    row = {"signature_name": "two_outputs", "instances": [[1.0, 0.1]]}
    assert ok(post(endpoint, row, attributes=attributes)) == {
        "predictions": [{"double": [2.0, 0.2], "negated": [-1.0, -0.1]}]
    }
    columnar = {"signature_name": "two_outputs", "inputs": [[1.0, 0.1]]}
    assert ok(post(endpoint, columnar, attributes=attributes)) == {
        "outputs": {"double": [[2.0, 0.2]], "negated": [[-1.0, -0.1]]}
    }


def test_named_inputs_ints_and_strings(endpoint):
    attributes = "tfs-model-name=scaled"
    two = {"signature_name": "two_inputs", "instances": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]}
    assert ok(post(endpoint, two, attributes=attributes)) == {"predictions": [3, 7]}
    strings = {"signature_name": "strings", "instances": ["abc", {"b64": "AAE="}]}
    assert ok(post(endpoint, strings, attributes=attributes)) == {
        "predictions": [
            {"echo_bytes": {"b64": "YWJj"}, "length": 3},
            {"echo_bytes": {"b64": "AAE="}, "length": 2},
        ]
    }


def test_floats_come_back_as_tf_serving_writes_them(endpoint):
    # float32(0.1) * 10 is written "1.0", and 0.1 as "0.1", not 0.10000000149011612.
    answer = ok(post(endpoint, {"instances": [[0.1, 0.3]]}, attributes="tfs-model-name=scaled"))
    assert answer == {"predictions": [[1.0, 3.0]]}
    answer = ok(
        post(
            endpoint, {"instances": [[0.1]]}, attributes="tfs-model-name=scaled,tfs-model-version=1"
        )
    )
    assert answer == {"predictions": [[0.1]]}


# --- JSON lines, generic JSON, CSV: AWS's conversions ------------------------------------


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/jsonlines", "application/jsons"]
)
def test_json_lines_become_instances(endpoint, content_type):
    body = "[1.0, 2.0, 5.0]\n[1.0, 2.0, 5.0]"
    assert ok(post(endpoint, body, content_type, HALF)) == {
        "predictions": [[3.5, 4.0, 5.5], [3.5, 4.0, 5.5]]
    }


def test_json_lines_of_objects_name_the_inputs(endpoint):
    body = '{"x": [1.0, 2.0, 5.0]}\n{"x": [1.0, 2.0, 5.0]}'
    assert ok(post(endpoint, body, attributes=HALF)) == {
        "predictions": [[3.5, 4.0, 5.5], [3.5, 4.0, 5.5]]
    }


def test_generic_json_is_one_instance_or_a_list_of_them(endpoint):
    assert ok(post(endpoint, [1.0, 2.0, 5.0])) == {"predictions": [[3.5, 4.0, 5.5]]}
    assert ok(post(endpoint, [[1.0, 2.0, 5.0], [1.0, 2.0, 5.0]])) == {
        "predictions": [[3.5, 4.0, 5.5], [3.5, 4.0, 5.5]]
    }


@pytest.mark.parametrize(
    "body, predictions",
    [
        ("1.0", [3.5]),
        ("0.0", [3.0]),
        ("1.0,2.0,5.0", [[3.5, 4.0, 5.5]]),
        ("0.0,2.0,5.0", [[3.0, 4.0, 5.5]]),
        ("1.0,2.0,5.0\n1.0,2.0,5.0", [[3.5, 4.0, 5.5], [3.5, 4.0, 5.5]]),
        ("1.0\n2.0\n5.0", [3.5, 4.0, 5.5]),
        ("1.0,2.0\r\n\r\n3.0,4.0\n", [[3.5, 4.0], [4.5, 5.0]]),
    ],
)
def test_csv_rows_become_instances(endpoint, body, predictions):
    assert ok(post(endpoint, body, "text/csv", HALF)) == {"predictions": predictions}


def test_wide_csv(endpoint):
    rows = ["0.0,1.0," * 14 + "0.0,0.0", "0.0,1.0," * 14 + "6.0,0.0"]
    predictions = ok(post(endpoint, "\n".join(rows), "text/csv", HALF))["predictions"]
    assert [len(p) for p in predictions] == [30, 30]
    assert [sum(p) for p in predictions] == [97, 100]


def test_csv_of_words_is_quoted_strings(endpoint):
    # AWS quotes the cells when the first does not look numeric; scaled takes floats, so
    # TF Serving refuses the strings, naming the first.
    response = post(endpoint, "abc,de\nf,ghij", "text/csv", "tfs-model-name=scaled")
    assert response.status_code == 400, response.text
    assert 'JSON Value: "abc" Type: String' in response.json()["error"]


# --- custom attributes ---------------------------------------------------------------------


def test_highest_version_serves_unless_one_is_named(endpoint):
    assert ok(post(endpoint, {"instances": [[1.0]]}, attributes="tfs-model-name=scaled")) == {
        "predictions": [[10.0]]
    }
    for version in (1, 2, 10):
        attributes = "tfs-model-name=scaled,tfs-model-version=%d" % version
        assert ok(post(endpoint, {"instances": [[1.0]]}, attributes=attributes)) == {
            "predictions": [[float(version)]]
        }
    for version in ("123", "124", "00000124"):
        attributes = HALF + ",tfs-model-version=" + version
        assert ok(post(endpoint, {"instances": [1.0]}, attributes=attributes)) == {
            "predictions": [3.5]
        }


def test_attributes_are_found_anywhere_in_the_header(endpoint):
    attributes = "trace=abc, tfs-model-name=scaled,other=1,tfs-model-version=2"
    assert ok(post(endpoint, {"instances": [[1.0]]}, attributes=attributes)) == {
        "predictions": [[2.0]]
    }


def test_regress(endpoint):
    body = {"signature_name": "tensorflow/serving/regress", "examples": [{"x": 1.0}, {"x": 2.0}]}
    assert ok(post(endpoint, body, attributes=HALF + ",tfs-method=regress")) == {
        "results": [3.5, 4.0]
    }
    one = {"signature_name": "tensorflow/serving/regress", "examples": [{"x": 1.0}]}
    assert ok(post(endpoint, one, attributes="tfs-method=regress")) == {"results": [3.5]}


def test_classify_with_context(endpoint):
    body = {
        "signature_name": "tensorflow/serving/classify",
        "context": {"x": 5.0},
        "examples": [{}, {"x": 1.0}],
    }
    assert ok(post(endpoint, body, attributes="tfs-method=classify")) == {
        "results": [[["neg", 5.5], ["pos", 11.0]], [["neg", 3.5], ["pos", 7.0]]]
    }


# --- errors naming what exists ------------------------------------------------------------


def error(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    return response.json()["error"]


def test_unknown_model_is_404_naming_the_models(endpoint):
    text = error(post(endpoint, {"instances": [1.0]}, attributes="tfs-model-name=nope"), 404)
    assert "nope" in text and "half_plus_three" in text and "scaled" in text


def test_unknown_version_is_404_naming_the_versions(endpoint):
    attributes = "tfs-model-name=scaled,tfs-model-version=3"
    text = error(post(endpoint, {"instances": [[1.0]]}, attributes=attributes), 404)
    assert "1, 2, 10" in text


def test_unknown_signature_is_400_naming_the_signatures(endpoint):
    body = {"signature_name": "nope", "instances": [[1.0]]}
    text = error(post(endpoint, body, attributes="tfs-model-name=scaled"), 400)
    assert "nope" in text and "two_outputs" in text and "serving_default" in text


def test_classify_on_a_predict_signature_is_400(endpoint):
    body = {"examples": [{"x": 1.0}]}
    text = error(post(endpoint, body, attributes="tfs-model-name=scaled,tfs-method=classify"), 400)
    assert "tensorflow/serving/classify" in text


def test_unknown_method_and_bad_version_are_400(endpoint):
    assert "regress" in error(
        post(endpoint, {"instances": [1.0]}, attributes="tfs-method=nope"), 400
    )
    assert error(post(endpoint, {"instances": [1.0]}, attributes="tfs-model-version=x1"), 400)


@pytest.mark.parametrize(
    "body, expected",
    [
        ('{"instances": ["]["]}', 'JSON Value: "][" Type: String is not of expected type: float'),
        ('{"junk": "data"}', "Failed to process element: 0 key: junk of 'instances' list."),
        ("whatever", "JSON Parse error"),
        ('{"instances": []}', "No values in 'instances' array"),
        ('{"instances": [1], "inputs": [1]}', "only one of 'inputs' or 'instances'"),
        ('{"instances": [[1.0], [1.0, 2.0]]}', "Failed to process element"),
    ],
)
def test_malformed_bodies_are_400_as_tf_serving_words_them(endpoint, body, expected):
    assert expected in error(post(endpoint, body), 400)


def test_empty_body_is_400(endpoint):
    # AWS's module wraps it as {"instances":[]}, which TF Serving refuses so.
    assert "No values in 'instances' array" in error(post(endpoint, b""), 400)


def test_unsupported_content_types_are_415(endpoint):
    for content_type in ("image/png", "application/x-npy", "unsupported-type"):
        text = error(post(endpoint, b"aW1hZ2UgYnl0ZXM=", content_type), 415)
        assert content_type in text and "text/csv" in text


def test_accept_jsonlines_labels_the_answer_so(endpoint):
    response = post(endpoint, {"instances": [1.0]}, accept="application/jsonlines")
    assert response.headers["content-type"] == "application/jsonlines"
    assert response.json() == {"predictions": [3.5]}
    both = post(endpoint, {"instances": [1.0]}, accept="application/json, application/jsonlines")
    assert both.headers["content-type"] == "application/json"
    assert error(post(endpoint, {"instances": [1.0]}, accept="text/csv"), 406)


def test_server_still_answers_after_the_errors(endpoint):
    assert endpoint.ping().status_code == 200
    assert ok(post(endpoint, {"instances": [1.0]})) == {"predictions": [3.5]}
