"""Decoding: one decoder (file checks, dictionary rule, missing slices, block paste, backend choice) over a torch
backend and a numpy backend."""
