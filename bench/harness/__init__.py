"""The benchmark harness of bench/run, one module per concept:

- settings: paths, report markers, CPU pinning;
- scenarios: what is measured, and the servers it runs against;
- processes: starting and reading processes (keyward, the OTLP sink, /proc);
- profile, figures: reading profiles and results;
- run: one run of every scenario;
- report, chart: docs/BENCHMARKS.md and docs/benchmarks.png;
- cli: the command line (`python3 bench/harness ...`).

Modules import only those listed above them, never the reverse.
"""
