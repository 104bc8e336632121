"""The CLC model. Importing it registers CompressAI without its eager imports first (_compressai.py)."""

from . import _compressai

_compressai.load()
