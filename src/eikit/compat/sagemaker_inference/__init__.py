"""eikit's stand-in for the parts of AWS's ``sagemaker-inference`` package that inference
scripts import (``content_types``, ``decoder``, ``encoder``, ``errors``), behaving as that
package does, so a script written for AWS's containers imports and runs unchanged.

Differences, on purpose: ``decoder.decode`` never unpickles an NPY body (AWS's passes
``allow_pickle=True``, which lets a client run code in the container), and takes
``bytes`` as well as ``str``. Install the real package with ``code/requirements.txt`` to
use it instead: it comes first on the path.
"""
