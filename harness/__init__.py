"""The harness: the oracle, the strategy x problem x query matrix, cell runner and CLI."""
