"""Per-camera multi-object tracking (ByteTrack-style) and its Kalman filter."""
