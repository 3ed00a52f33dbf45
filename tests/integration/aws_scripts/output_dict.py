"""output_fn returning a dict, left to the model server to serialise.

Pattern: a hook returning neither ``bytes`` nor ``str``: MMS serialises it with
``json.dumps(val, indent=2)`` (mms/protocol/otf_message_handler.py,
create_predict_response), and the response type is ``accept``.
"""


def output_fn(prediction, accept):
    return {"predictions": prediction.tolist(), "count": len(prediction)}
