"""Side-by-side benchmarks of ``divergences`` against its peers (see ``benchmarks/README.md``)."""
