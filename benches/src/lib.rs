//! Benchmarks and the figures report.
