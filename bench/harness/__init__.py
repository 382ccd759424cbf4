"""The benchmark harness of bench/run, one module per concept:

- settings: paths, report markers, CPU pinning;
- scenarios: what is measured, and the servers it runs against;
- processes: starting and reading processes (keyward, the OTLP sink, /proc);
- profile, figures: reading profiles and results;
- run: one run of every scenario;
- callgrind, revocation: instructions per request under callgrind, and the
  revocation lag between two replicas (each its measurement and its part
  of the report);
- report, chart: docs/BENCHMARKS.md and docs/benchmarks.png;
- cli: the command line (`python3 bench/harness ...`).

Modules import only those listed above them, never the reverse.
"""
