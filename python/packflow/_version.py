"""The package version, in a leaf module so any submodule can import it."""

__version__ = "0.5.0"
