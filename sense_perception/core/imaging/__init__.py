"""Image decoding of camera messages and the guards around it (size limits, lost-frame ledger)."""
