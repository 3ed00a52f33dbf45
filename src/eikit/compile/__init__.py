"""``eikit compile``: a model compiled for a Neuron generation, in a new ``model.tar.gz``.

``command`` spells the command (the server's warning and the migration quote it); ``cli``
parses it; ``example`` reads the example input; ``archive`` unpacks the model and packs the
result; ``local`` compiles in-process or in the generation's eikit image with Docker;
``neo`` compiles with SageMaker Neo.
"""
