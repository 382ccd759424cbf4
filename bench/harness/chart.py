"""Drawing docs/benchmarks.png."""

from __future__ import annotations

from pathlib import Path

from harness.scenarios import SCENARIOS


def chart(run_rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s.name for s in SCENARIOS if any(r["scenario"] == s.name for r in run_rows)]
    tools = ["loadgen", "h2load"]
    colors = {"loadgen": "#4C72B0", "h2load": "#DD8452"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    panels = [
        ("x_rps", "Throughput (× baseline req/s)", "min_throughput"),
        ("x_p99", "p99 latency (× baseline p99)", "max_p99"),
        ("x_cpu", "Server CPU per request (× baseline)", None),
    ]
    width = 0.38
    for ax, (key, title, goal_key) in zip(axes, panels):
        for t, tool in enumerate(tools):
            xs, ys = [], []
            for i, name in enumerate(names):
                r = next((r for r in run_rows if r["scenario"] == name and r["tool"] == tool), None)
                if r and r[key] is not None:
                    xs.append(i + (t - 0.5) * width)
                    ys.append(r[key])
            ax.bar(xs, ys, width, label=tool, color=colors[tool])
            for x, y in zip(xs, ys):
                ax.text(x, y, f"{y:.2f}", ha="center", va="bottom", fontsize=7)
        if goal_key:
            for i, name in enumerate(names):
                scenario = next(s for s in SCENARIOS if s.name == name)
                g = scenario.goal and getattr(scenario.goal, goal_key)
                if g and scenario.goal.of_reference:
                    # The goal in baseline units: a fraction of the
                    # reference's ratio (loadgen).
                    ref = next((r for r in run_rows if r["scenario"] == scenario.reference
                                and r["tool"] == "loadgen"), None)
                    g = g * ref[key] if ref and ref[key] is not None else None
                if g:
                    ax.hlines(g, i - 0.45, i + 0.45, colors="crimson", linestyles="--", linewidth=1.5,
                              label="goal")
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=25, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
    handles, labels = [], []
    for ax in axes:
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    axes[0].legend(handles, labels, fontsize=8)
    fig.suptitle("keyward: each scenario relative to Health/Check on the same process (same run)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
