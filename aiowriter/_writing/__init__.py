"""The writer: bounded per-stream lanes, batch drainers, deliveries, settling."""
