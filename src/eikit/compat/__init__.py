"""Modules that scripts written for AWS's containers import from those containers.

This folder is appended to the workers' ``sys.path`` (``user_module.prepare_path``), last,
so a package installed for real (from ``code/requirements.txt``) always wins.
"""
