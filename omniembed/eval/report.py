"""A recall matrix written out: markdown tables (one per dim, with mAP and the chance level), the result as
JSON, and a heatmap PNG of recall@k (one panel per dim; needs matplotlib, which the train extra installs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from omniembed.eval.metrics import KS


def _cell(q: str, t: str, table: dict, ks, extra: dict | None = None) -> str:
    if q == t:
        return "—"
    r = table.get(f"{q}->{t}")
    if r is None:
        return "n/a"
    cell = " / ".join(f"{r[k]:.2f}" for k in ks)
    return cell if extra is None else f"{cell} ({extra[f'{q}->{t}']:.2f})"


def markdown(result: dict, ks=KS) -> list[str]:
    mods = list(result["counts"])
    head = ["| query \\ target | " + " | ".join(mods) + " |", "|---|" + "---:|" * len(mods)]
    lines = []
    for d, table in result["dims"].items():
        maps = result["map"][d]
        lines += [f"## dim {d}", "", f"recall@{'/'.join(map(str, ks))} (mAP) — rows: query modality, columns: target",
                  "", *head]
        lines += [f"| **{q}** | " + " | ".join(_cell(q, t, table, ks, maps) for t in mods) + " |" for q in mods]
        if table:
            lines += ["", f"mean recall@{ks[0]} over the {len(table)} pairs: "
                      f"{np.mean([r[ks[0]] for r in table.values()]):.3f}; mean mAP {np.mean(list(maps.values())):.3f}"]
        lines.append("")
    lines += ["## chance level", "", f"recall@{'/'.join(map(str, ks))} of a random ranking of the same galleries "
              "(items sharing a key make it higher than k/G)", "", *head]
    lines += [f"| **{q}** | " + " | ".join(_cell(q, t, result["chance"], ks) for t in mods) + " |" for q in mods]
    if result.get("skipped"):
        lines += ["", "## skipped pairs", "", *[f"- {s}" for s in result["skipped"]]]
    return lines + [""]


def plot(result: dict, path: Path, k: int = 1, title: str = "") -> bool:
    """The heatmap; False (and no file) where matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mods = list(result["counts"])
    dims = list(result["dims"])
    fig, axes = plt.subplots(1, len(dims), figsize=(3.9 * len(dims) + 0.8, 3.6), squeeze=False)
    im = None
    for ax, d in zip(axes[0], dims):
        grid = np.full((len(mods), len(mods)), np.nan)
        for i, q in enumerate(mods):
            for j, t in enumerate(mods):
                if f"{q}->{t}" in result["dims"][d]:
                    grid[i, j] = result["dims"][d][f"{q}->{t}"][k]
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
        for i in range(len(mods)):
            for j in range(len(mods)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if grid[i, j] < 0.6 else "black")
        ax.set_xticks(range(len(mods)), [m[:5] for m in mods], rotation=45, fontsize=7)
        ax.set_yticks(range(len(mods)), [m[:5] for m in mods], fontsize=7)
        ax.set_title(f"dim {d}", fontsize=9)
        ax.set_xlabel("target", fontsize=7)
    axes[0][0].set_ylabel("query", fontsize=7)
    if im is not None:
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label=f"recall@{k}")
    fig.suptitle(title or f"recall@{k}", fontsize=9)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return True


def write(result: dict, out_dir: Path, header: list[str], name: str = "recall_matrix", plot_k: int = 1,
          title: str = "") -> dict[str, Path]:
    """OUT/NAME.md, OUT/NAME.json and OUT/NAME.png (where matplotlib is installed); returns what was written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {"md": out_dir / f"{name}.md", "json": out_dir / f"{name}.json"}
    png = out_dir / f"{name}.png"
    has_png = plot(result, png, plot_k, title)
    note = f"- heatmap: {png.name} (recall@{plot_k}, one panel per dim)" if has_png else \
        "- heatmap: not drawn (matplotlib is not installed: pip install matplotlib)"
    written["md"].write_text("\n".join(header + [note, ""] + markdown(result)))
    written["json"].write_text(json.dumps(result, indent=1, default=str) + "\n")
    if has_png:
        written["png"] = png
    return written
