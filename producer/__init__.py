"""Fire-and-forget publishing of telemetry events from agent processes."""
