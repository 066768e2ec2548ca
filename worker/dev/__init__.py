"""For the demo, the tests and the benchmarks only: embedded servers, the demo, scratch schemas.
Production code never imports this package (an import contract checks it)."""
