"""The installed tamis version (one place; modules import it from here, not from the package)."""

__version__ = "0.1.0"
