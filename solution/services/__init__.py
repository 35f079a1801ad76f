"""The workshop's five microservices and the code they share.

`services.shared` holds what every service uses (telemetry, trace context, the HTTP client,
sampling, settings, the span store); each other package is one service with a `create_app()`
factory in its `main.py`.
"""
