"""ONNX Runtime sessions and the bundled models: registry, verification, in-memory preparation."""
