"""Draw the im2col figure of the "How it works" page at build (``_generated/im2col.png``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sphinx.application import Sphinx


def draw(path: Path) -> None:
    """A 4x4 one-channel image, its 2x2 windows (stride 1) and the 9 x 4 column matrix
    they become, with the window of output (0, 1) picked out in all three."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Rectangle

    rows, columns = np.indices((4, 4))
    image = (3 * rows + 2 * columns * columns + rows * columns) % 9 + 1
    k, out = 2, 3
    cols = np.array([image[i : i + k, j : j + k].ravel() for i in range(out) for j in range(out)])
    fig, (ax_img, ax_cols, ax_out) = plt.subplots(1, 3, figsize=(10, 3.6), width_ratios=[4, 4, 3])
    for ax, data, title in [(ax_img, image, "input x (4x4)"),
                            (ax_cols, cols, "columns: one row per output position\n(9 x kH*kW)")]:  # fmt: skip
        ax.imshow(np.zeros_like(data), cmap="Greys", vmin=0, vmax=1)
        for (r, c), v in np.ndenumerate(data):
            ax.text(c, r, str(v), ha="center", va="center", fontsize=11)
        ax.set_xticks(np.arange(-0.5, data.shape[1]), minor=True)
        ax.set_yticks(np.arange(-0.5, data.shape[0]), minor=True)
        ax.grid(which="minor", color="0.6")
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        ax.set_title(title, fontsize=10)
    ax_img.add_patch(Rectangle((0.5, -0.5), 2, 2, fill=False, lw=3, ec="tab:orange"))
    ax_cols.add_patch(Rectangle((-0.5, 0.5), 4, 1, fill=False, lw=3, ec="tab:orange"))
    weights = np.array([1, 0, 0, -1])  # a diagonal edge detector
    result = (cols @ weights).reshape(out, out)
    ax_out.imshow(np.zeros_like(result), cmap="Greys", vmin=0, vmax=1)
    for (r, c), v in np.ndenumerate(result):
        ax_out.text(c, r, str(v), ha="center", va="center", fontsize=11)
    ax_out.add_patch(Rectangle((0.5, -0.5), 1, 1, fill=False, lw=3, ec="tab:orange"))
    ax_out.set_xticks([])
    ax_out.set_yticks([])
    ax_out.set_title("output = columns @ w\n(w = [1, 0, 0, -1], reshaped 3x3)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _on_init(app: Sphinx) -> None:
    draw(Path(app.srcdir) / "_generated" / "im2col.png")


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", _on_init)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
