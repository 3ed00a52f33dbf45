"""``eikit bench``: load a model server, measure what it costs, compare two configurations.

``load`` is the one HTTP load generator of the project (wrk, or asyncio where wrk is
missing); ``usage`` reads the CPU and memory of a server's process tree; ``served`` starts
a server to measure; ``runner`` runs sweeps and A/B rounds; ``command`` is the CLI.
"""
