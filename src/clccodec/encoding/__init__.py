"""Encoding: the image encoder (reference choice, block copy, rate control) and its effort levels."""
