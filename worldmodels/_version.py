"""The library's version, in one place (``pyproject.toml`` reads it; modules import it from here)."""

__version__ = "0.1.0"
