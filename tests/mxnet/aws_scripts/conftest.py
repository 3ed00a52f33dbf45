"""The scripts here are inference scripts served by tests/mxnet/test_aws_scripts.py, not
tests: pytest must never import them."""

collect_ignore_glob = ["*.py"]
