"""Message-shaped results, output topic naming and drawing of detections."""
