"""The API gateway (api-gateway): the system's front door."""
