"""Ray clusters: connecting, submitting jobs through the Jobs API, and the local development cluster."""
