"""Events: time series per (country, ASN, service, layer), change detection, shutdowns."""
