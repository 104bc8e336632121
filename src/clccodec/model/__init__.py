"""The CLC network (network.py), its fixed-point twins (exact.py, synthesis.py), the quality ladder, weights
files and released model ids. Imports nothing above it."""
