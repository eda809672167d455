"""Pairwise preference models: export to ONNX and the runtime that serves them."""
