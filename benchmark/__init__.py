"""The runner, metrics, findings and command line of switchbench."""
