"""Object and pedestrian detection: pre-processing, model families' decoders, post-processing, tiling."""
