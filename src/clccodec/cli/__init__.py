"""The `clc` command: a thin layer over clccodec.api that parses options and reports with rich.

One module per command group (coding, info, training, evaluate, dictionary) registers its commands on the
shared Typer app (app.py); batch plumbing lives in batch.py. Heavy modules (torch, the model) are imported
inside the commands that need them.
"""

from . import coding, info, training, evaluate, dictionary  # noqa: F401,E402 - registers the commands, in this order
from .app import app, main

__all__ = ["app", "main"]
