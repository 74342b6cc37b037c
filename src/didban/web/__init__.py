"""The explorer: server-rendered pages from the same queries as the API."""
