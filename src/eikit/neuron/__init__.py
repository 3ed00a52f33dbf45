"""AWS Inferentia and Trainium (Neuron): the dated facts eikit builds on (``facts``), what a
host offers (``host``) and what a compiled model archive holds (``manifest``).

Nothing here imports a framework or a Neuron package.
"""
