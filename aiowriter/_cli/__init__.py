"""The ``aiowriter`` command line: ``demo`` and ``sessions`` subcommands."""

from .main import main as main

__all__ = ["main"]
