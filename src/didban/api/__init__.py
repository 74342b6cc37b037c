"""The HTTP API (FastAPI): OONI-compatible collector, measurements, aggregation, services,
exports. Holds no business logic: it calls the store and analysis."""
