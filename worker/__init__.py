"""Workers that apply telemetry events from Redis streams to PostgreSQL."""
