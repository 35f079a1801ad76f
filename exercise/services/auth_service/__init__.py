"""The auth service (auth-service): verifies bearer tokens."""
