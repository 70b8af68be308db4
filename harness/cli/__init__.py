"""The ``deqbench`` command: one click command a module; ``main.main`` is the group the
console script runs (``deqbench.harness.cli.main:main``)."""
