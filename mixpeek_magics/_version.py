"""The package version, in layer 0 so that every layer (the local server too) can read it."""

__version__ = "0.1.0"
