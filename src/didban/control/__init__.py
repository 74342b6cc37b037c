"""The test helper: the same measurements from an unfiltered vantage point, speaking OONI's
oohelperd wire protocol; server and client."""
