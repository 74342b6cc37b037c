"""The data model shared by every layer: OONI measurement structs, failure strings,
verdicts and events. Nothing in this package does I/O."""
