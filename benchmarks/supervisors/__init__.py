"""foss-supervisor against supervisord and circus, side by side in one run.

Modules, each with one job: ``common`` (settings, plan, results, errors), ``install`` (the benchmark venv
and the child programs), ``observe`` (watching children start and die), ``tools`` (the three supervisors
behind one interface), ``workloads`` (the per-workload measurements at 50 programs), ``fleet`` (the
1,000-program workload), ``report`` (the Markdown report and the issue's targets) and ``main`` (the
command line). The entry script is ``benchmarks/bench_supervisors.py``; ``benchmarks/README.md`` says
what each workload measures and why the comparison is fair.
"""

from __future__ import annotations

__all__: list[str] = []
