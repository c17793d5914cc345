"""Fakes the tests and benchmarks run against: real servers on 127.0.0.1."""
