"""Benchmarks of Headshot Studio: each `bench/<area>.py` has a `main()` that measures and prints its figures."""
