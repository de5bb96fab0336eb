"""The PNG of ``switchyard eval --plot``: quality against strong-call share.

matplotlib is optional (the ``plot`` extra); it is imported only here, with the Agg
backend, so no display is needed.
"""

from __future__ import annotations

from collections.abc import Sequence

from .jsonl import ToolError

INSTALL_HINT = 'pip install -e ".[plot]"  (or: pip install matplotlib)'


def require() -> None:
    """Fail early, before any scoring, when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ToolError(f"--plot needs matplotlib, which is not installed: {INSTALL_HINT}") from None


def quality_curve(
    path: str,
    curve: Sequence[tuple[float, float, float]],
    *,
    strong: str,
    weak: str,
    router: str,
    summary: str,
    oracle: Sequence[tuple[float, float, float]] | None = None,
) -> None:
    """Write the router's quality curve, the random baseline and both models' levels to ``path`` (PNG)."""
    require()
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    q_weak, q_strong = curve[0][1], curve[-1][1]
    shares = [point[0] * 100 for point in curve]
    figure, axes = plt.subplots(figsize=(7.5, 5.8), dpi=120)
    try:
        axes.axhline(q_strong, color="tab:red", linestyle="--", linewidth=1.2, label=f"strong: {strong} ({q_strong:.3f})")
        axes.axhline(q_weak, color="tab:blue", linestyle="--", linewidth=1.2, label=f"weak: {weak} ({q_weak:.3f})")
        axes.plot([0, 100], [q_weak, q_strong], color="grey", linestyle=":", linewidth=1.5, label="random router")
        if oracle is not None:
            axes.plot([p[0] * 100 for p in oracle], [p[1] for p in oracle], color="tab:green", linewidth=1, alpha=0.5, label="oracle")
        axes.plot(shares, [point[1] for point in curve], color="black", linewidth=2, label=f"{router}")
        axes.set_xlabel("strong-model calls (% of prompts)")
        axes.set_ylabel("mean quality of the routed answers")
        axes.set_xlim(0, 100)
        axes.set_title(summary, fontsize=10)
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8, frameon=False)  # below: never over a line
        figure.tight_layout()
        try:
            figure.savefig(path, format="png", bbox_inches="tight")
        except OSError as exc:
            raise ToolError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(figure)
