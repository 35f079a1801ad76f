"""The order service (order-service): runs the order workflow."""
