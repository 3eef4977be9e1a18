"""Open Data on the wire: builders, sample and object encoders, input checks."""
