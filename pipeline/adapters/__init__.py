"""Third-party private names, one small module per internal: an upgrade that moves one breaks here,
and tests/test_adapters.py says so first."""
