"""deqbench's asv suite: the strategy x problem x query matrix as asv benchmarks.

Configured by the top-level ``asv.conf.json``; how to run it is in ``docs/asv.md``.
"""
