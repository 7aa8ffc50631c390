"""The package version (one place: ``setup.cfg`` reads it, so do the run cache keys)."""
__version__ = "0.1.0"
