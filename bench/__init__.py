"""Benchmarks (`make bench`): throughput of aqnet's hot paths as ratios against a baseline measured in the same
run, so the figures compare across machines. No timed assertions live in the tests."""
