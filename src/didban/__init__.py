"""didban: measure, prove and document internet censorship and shutdowns."""

__version__ = "0.1.0"
