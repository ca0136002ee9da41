"""The soak: owns ``nox -s soak`` (``python -m scripts.soak``): steady storm-mix ingest plus LLM
background load for N minutes on a topology of its own, sampling process memory, table and index
sizes, the outbox backlog, attribution lag and intake p99, then judging that nothing grows with
time after the warm-up (``verdict``), drawing it (``plot``), and writing artifacts/soak/.

- ``__main__``: the command line and the run (load, sampler, verdict, artifacts);
- ``samplers``: what one sample reads (processes, database);
- ``verdict``: slope fits and the pass/fail rules, pure functions;
- ``plot``: the SVG of every series.
"""
