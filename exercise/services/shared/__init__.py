"""Code every service shares: telemetry set-up, trace context, the traced HTTP client,
sampling, settings, logging and the span store."""
