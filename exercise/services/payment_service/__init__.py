"""The payment service (payment-service): charges the external payment API."""
