"""The file formats as bytes: .clc (container, metadata sections, the block-copy section), .clcdict, and the
ids both name. Imports neither torch nor the model."""
