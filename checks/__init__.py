"""The graded checks: one module per success criterion."""
