"""Pictures: image grids (PNG), GIFs, training curves, shaded meshes and SDF slices. Outer layer
(writes files); pure plotting helpers (numpy, torch, trimesh, matplotlib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = [
    "image_grid",
    "save_grid",
    "save_gif",
    "plot_curves",
    "to_uint8",
    "pyplot",
    "save_figure",
    "render_mesh",
    "save_mesh_grid",
    "save_slices_with_truth",
]


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(N, C, H, W)`` floats in [0, 1] -> ``(N, H, W, C)`` uint8 (values clipped)."""
    x = images.detach().float().clamp(0, 1).cpu()
    return (x.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)


def image_grid(images: torch.Tensor, *, nrow: int = 8, pad: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tile ``(N, C, H, W)`` images in [0, 1] into one ``(rows·(H+pad)+pad, …, 3)`` uint8 array
    (grayscale replicated to RGB), ``nrow`` images per row."""
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    imgs = to_uint8(images)
    if imgs.shape[-1] == 1:
        imgs = np.repeat(imgs, 3, axis=-1)
    N, H, W, _ = imgs.shape
    ncol = min(nrow, N)
    nrows = (N + ncol - 1) // ncol
    out = np.full((nrows * (H + pad) + pad, ncol * (W + pad) + pad, 3), int(pad_value * 255), np.uint8)
    for i in range(N):
        r, c = divmod(i, ncol)
        out[pad + r * (H + pad) : pad + r * (H + pad) + H, pad + c * (W + pad) : pad + c * (W + pad) + W] = imgs[i]
    return out


def save_grid(images: torch.Tensor, path, *, nrow: int = 8, pad: int = 2) -> Path:
    """Write a PNG grid of ``(N, C, H, W)`` images in [0, 1]."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, image_grid(images, nrow=nrow, pad=pad))
    return path


def save_gif(frames: list[np.ndarray] | torch.Tensor, path, *, duration: float = 0.08, loop: int = 0) -> Path:
    """Write an animated GIF; ``frames`` are uint8 ``(H, W, 3)`` arrays or a ``(T, C, H, W)`` tensor
    in [0, 1]. ``duration`` is seconds per frame."""
    import imageio.v3 as iio

    if isinstance(frames, torch.Tensor):
        frames = [image_grid(f[None], nrow=1, pad=0) for f in frames]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.stack(frames), extension=".gif", duration=int(duration * 1000), loop=loop)
    return path


def pyplot():
    """``matplotlib.pyplot`` on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, *, dpi: int = 100, tight: bool = True) -> Path:
    """Lay out (``tight_layout``, unless ``tight=False`` for figures placed by hand), write
    (creating the folder) and close a matplotlib figure; returns the path."""
    if tight:
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def save_convergence_figure(originals: torch.Tensor, snapshots: list[dict], path) -> Path:
    """The paper's Figure 6: the first column ``originals (n, C, H, W)``, then one column per
    snapshot (``{"images": (n, C, H, W), "seconds", "step", "psnr"}``) with its training time and
    test PSNR under it."""
    n = originals.shape[0]
    cols = [originals.cpu()] + [s["images"].cpu() for s in snapshots]
    fig, axes = pyplot().subplots(n, len(cols), figsize=(1.1 * len(cols), 1.1 * n + 0.5), squeeze=False)
    for c, imgs in enumerate(cols):
        for r in range(n):
            ax = axes[r, c]
            img = imgs[r].clamp(0, 1).permute(1, 2, 0).numpy()
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        label = "test images" if c == 0 else (f"{snapshots[c - 1]['seconds']:.0f} s\n{snapshots[c - 1]['psnr']:.1f} dB")
        axes[-1, c].set_xlabel(label, fontsize=8)
    return save_figure(fig, path, dpi=120)


def plot_curves(history: dict, path) -> Path:
    """Loss and test PSNR against steps and seconds, as one 2×2 PNG.

    ``history`` holds lists: ``step``, ``seconds``, ``loss`` (training, per log point) and
    ``eval_step``, ``eval_seconds``, ``test_psnr``.
    """
    fig, ax = pyplot().subplots(2, 2, figsize=(10, 7))
    for col, key in ((0, "step"), (1, "seconds")):
        ax[0, col].plot(history.get(key, []), history.get("loss", []), lw=1)
        ax[0, col].set_yscale("log")
        ax[0, col].set_ylabel("training loss (per pixel MSE)")
        ax[1, col].plot(history.get(f"eval_{key}", []), history.get("test_psnr", []), "o-", ms=3)
        ax[1, col].set_ylabel("test PSNR (dB)")
        for r in (0, 1):
            ax[r, col].set_xlabel("step" if key == "step" else "seconds")
            ax[r, col].grid(alpha=0.3)
    return save_figure(fig, path)


# ---------------------------------------------------------------------------------------------
# meshes and SDF slices

#: default camera ``(elevation, azimuth)`` in degrees (matplotlib's ``view_init`` convention)
VIEW = (25.0, -60.0)
#: default base colour of meshes and point clouds
MESH_COLOR = (0.55, 0.68, 0.88)


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def _view_dir(elev: float, azim: float, vertical: int = 2) -> np.ndarray:
    """Unit vector from the scene towards a camera at ``(elev, azim)`` degrees (as matplotlib)."""
    e, a = np.deg2rad(elev), np.deg2rad(azim)
    d = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
    return np.roll(d, vertical - 2)


def _shade(normals: np.ndarray, eye: np.ndarray, light: np.ndarray, rgb, ambient: float) -> np.ndarray:
    """``(F, 3)`` unit normals -> ``(F, 4)`` RGBA: ``ambient + (1 - ambient)·max(0, n·l)`` times
    ``rgb``. Normals facing away from the camera are flipped first (two-sided lighting, so a mesh
    wound the other way round is still lit)."""
    n = np.where((normals @ eye)[:, None] < 0, -normals, normals)
    k = ambient + (1.0 - ambient) * np.clip(n @ light, 0.0, None)
    out = np.empty((len(n), 4))
    out[:, :3] = np.clip(k[:, None] * np.asarray(rgb)[None, :], 0.0, 1.0)
    out[:, 3] = 1.0
    return out


def _setup_3d(ax, view, bounds, vertical_axis: str) -> None:
    ax.view_init(elev=view[0], azim=view[1], vertical_axis=vertical_axis)
    ax.set_proj_type("ortho")
    lo, hi = float(bounds[0]), float(bounds[1])
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_zlim(lo, hi)
    # zoom: the default fits the whole bounding cube; shapes normalised to the unit ball fill more
    ax.set_box_aspect((1, 1, 1), zoom=1.3)
    ax.set_axis_off()


def render_mesh(
    ax,
    mesh,
    *,
    view: tuple[float, float] = VIEW,
    color=MESH_COLOR,
    bounds: tuple[float, float] = (-1.0, 1.0),
    max_faces: int = 20_000,
    max_points: int = 5_000,
    light: tuple[float, float] | None = None,
    ambient: float = 0.25,
    vertical_axis: str = "z",
    seed: int = 0,
):
    """Draw one mesh or point cloud on the matplotlib 3-D axis ``ax``; returns ``ax``.

    ``mesh`` is a ``trimesh.Trimesh`` (flat-shaded triangles, no edges), a point cloud (a
    ``(N, 3)`` numpy array or tensor, or a ``trimesh.PointCloud``: a small scatter), or ``None``
    (left blank). A mesh without faces shows the text "empty".

    * ``view``: ``(elevation, azimuth)`` in degrees; orthographic projection, equal aspect, axes
      hidden, limits ``bounds = (lo, hi)`` on all three axes, so meshes drawn with the same
      ``view`` and ``bounds`` share scale and viewpoint.
    * shading per face: ``ambient + (1 - ambient)·max(0, n·l)`` times ``color`` (any matplotlib
      colour), ``n`` the face normal, ``l`` a fixed light direction given as
      ``(elevation, azimuth)`` degrees (default: 25° above and 30° to the right of the camera).
    * more than ``max_faces`` faces: faces turned away from the camera (given the mesh's
      orientation, taken from its signed volume) are dropped, then ``max_faces`` faces are kept,
      chosen uniformly with the generator seeded by ``seed`` (deterministic; leaves small gaps).
      Point clouds are thinned to ``max_points`` the same way.
    * ``vertical_axis``: "x", "y" or "z", the world axis drawn upwards.
    """
    from matplotlib.colors import to_rgb

    vert = {"x": 0, "y": 1, "z": 2}[vertical_axis]
    _setup_3d(ax, view, bounds, vertical_axis)
    if mesh is None:
        return ax
    rgb = np.array(to_rgb(color))
    rng = np.random.default_rng(seed)
    import trimesh

    if isinstance(mesh, trimesh.PointCloud):
        mesh = np.asarray(mesh.vertices)
    if not isinstance(mesh, trimesh.Trimesh):
        pts = _as_numpy(mesh).reshape(-1, 3).astype(np.float64)
        if len(pts) > max_points:
            pts = pts[np.sort(rng.choice(len(pts), max_points, replace=False))]
        if len(pts) == 0:
            ax.text2D(0.5, 0.5, "empty", transform=ax.transAxes, ha="center", va="center", fontsize=9)
            return ax
        ax.scatter(pts[:, 0], pts[:, 1], pts[:, 2], s=1.2, color=rgb, linewidths=0, depthshade=True)
        return ax
    faces = np.asarray(mesh.faces)
    if len(faces) == 0:
        ax.text2D(0.5, 0.5, "empty", transform=ax.transAxes, ha="center", va="center", fontsize=9)
        return ax
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    tris = np.asarray(mesh.triangles, dtype=np.float64)  # (F, 3, 3)
    normals = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    length = np.linalg.norm(normals, axis=1)
    keep = length > 0
    tris, normals = tris[keep], normals[keep] / length[keep, None]
    eye = _view_dir(view[0], view[1], vert)
    if len(tris) > max_faces:
        # orientation from the signed volume: sum of centroid·(unnormalised normal) = 6·volume
        outward = 1.0 if float(np.einsum("ij,ij->", tris.mean(1), normals * length[keep, None])) >= 0 else -1.0
        front = outward * (normals @ eye) > 0
        if front.any():
            tris, normals = tris[front], normals[front]
        if len(tris) > max_faces:
            grow = min(np.sqrt(len(tris) / max_faces), 2.0)
            idx = np.sort(rng.choice(len(tris), max_faces, replace=False))
            tris, normals = tris[idx], normals[idx]
            # enlarge the kept triangles about their centroids to cover the area of the dropped ones
            centre = tris.mean(1, keepdims=True)
            tris = centre + grow * (tris - centre)
    if light is None:
        light = (view[0] + 25.0, view[1] + 30.0)
    l_dir = _view_dir(light[0], light[1], vert)
    colors = _shade(normals, eye, l_dir, rgb, ambient)
    coll = Poly3DCollection(tris, facecolors=colors, edgecolors="none", linewidths=0, antialiased=False)
    ax.add_collection3d(coll)
    return ax


def _cell_title(titles, r: int, c: int):
    """``titles``: one string per column (shown over the first row) or one list per row."""
    if titles is None:
        return None
    if titles and isinstance(titles[0], (list, tuple)):
        row = titles[r] if r < len(titles) else ()
        return row[c] if c < len(row) else None
    return titles[c] if r == 0 and c < len(titles) else None


def save_mesh_grid(
    rows,
    path,
    *,
    titles=None,
    row_labels=None,
    view: tuple[float, float] = VIEW,
    size: float = 2.2,
    bounds: tuple[float, float] = (-1.0, 1.0),
    colors=None,
    max_faces: int = 20_000,
    vertical_axis: str = "z",
    dpi: int = 100,
) -> Path:
    """PNG of meshes in a grid, all shaded with the same view, limits and light; returns the path.

    ``rows``: a list of rows, each a list of entries for :func:`render_mesh` (a
    ``trimesh.Trimesh``, a ``(N, 3)`` point cloud, or ``None`` for a blank cell); the grid has
    ``len(rows)`` rows and ``max(len(row))`` columns, each cell ``size`` × ``size`` inches (a
    0.2 inch title band at its top when ``titles`` is given), plus a 0.3 inch column on the left
    when ``row_labels`` is given; the PNG is that many inches times ``dpi`` pixels. Every cell's
    3-D axis has the same box, so shapes keep their relative sizes (the view is zoomed so the unit
    ball fills a cell; corners of the ``bounds`` cube may be cut). ``titles``: one string per
    column (over the top row) or a list of strings per row (over each cell). ``row_labels``: one
    string per row, written vertically left of the row. ``colors``: one matplotlib colour per
    row (default: :data:`MESH_COLOR` everywhere). Folders are created.
    """
    rows = [list(r) for r in rows]
    if not rows or not any(rows):
        raise ValueError("rows must hold at least one non-empty row")
    nrows, ncols = len(rows), max(len(r) for r in rows)
    if row_labels is not None and len(row_labels) != nrows:
        raise ValueError(f"row_labels has {len(row_labels)} entries for {nrows} rows")
    if colors is not None and len(colors) != nrows:
        raise ValueError(f"colors has {len(colors)} entries for {nrows} rows")
    # cells placed by hand (tight_layout misplaces 3-D axes): every axis gets the same box
    label_w = 0.3 if row_labels is not None else 0.0  # inches
    title_h = 0.2 if titles is not None else 0.0
    W, H = label_w + size * ncols, size * nrows
    fig = pyplot().figure(figsize=(W, H))
    for r, row in enumerate(rows):
        bottom = H - (r + 1) * size
        for c in range(ncols):
            left = label_w + c * size
            ax = fig.add_axes((left / W, bottom / H, size / W, (size - title_h) / H), projection="3d")
            entry = row[c] if c < len(row) else None
            render_mesh(
                ax,
                entry,
                view=view,
                bounds=bounds,
                max_faces=max_faces,
                vertical_axis=vertical_axis,
                color=colors[r] if colors is not None else MESH_COLOR,
            )
            title = _cell_title(titles, r, c)
            if title:
                fig.text(
                    (left + size / 2) / W,
                    (bottom + size - title_h / 2) / H,
                    str(title),
                    ha="center",
                    va="center",
                    fontsize=8,
                )
        if row_labels is not None and row_labels[r]:
            fig.text(
                label_w / 2 / W,
                (bottom + (size - title_h) / 2) / H,
                str(row_labels[r]),
                rotation=90,
                ha="center",
                va="center",
                fontsize=9,
            )
    return save_figure(fig, path, dpi=dpi, tight=False)


def save_slices_with_truth(
    pred_slices,
    path,
    *,
    truth_slices=None,
    titles=None,
    extent: tuple[float, float, float, float] = (-1.0, 1.0, -1.0, 1.0),
    ncols: int | None = None,
    size: float = 2.2,
    truth_color: str = "lime",
) -> Path:
    """PNG of SDF slices, one panel per shape; returns the path.

    ``pred_slices``: a list of ``(R, R)`` arrays or tensors (or one ``(N, R, R)`` array), indexed
    ``[x, y]`` as returned by ``inr_gon.geometry.mesh.sdf_slice``; each is shown with
    ``origin="lower"`` over ``extent`` in the RdBu colour map, symmetric around 0, with its zero
    level as a solid black contour. ``truth_slices`` (same length; entries may be ``None``): the
    zero level of each ground truth drawn over it as a dashed ``truth_color`` contour, and a
    legend under the first panel. ``titles``: one string per panel. ``ncols``: panels per row
    (default: all in one row). Folders are created.
    """
    from matplotlib.lines import Line2D

    preds = [_as_numpy(v) for v in pred_slices]
    n = len(preds)
    if n == 0:
        raise ValueError("pred_slices is empty")
    truths = [None] * n if truth_slices is None else [None if t is None else _as_numpy(t) for t in truth_slices]
    if len(truths) != n:
        raise ValueError(f"truth_slices has {len(truths)} entries for {n} predictions")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles has {len(titles)} entries for {n} panels")
    ncols = n if ncols is None else max(1, min(int(ncols), n))
    nrows = (n + ncols - 1) // ncols
    legend_h = 0.35 if truth_slices is not None else 0.0  # inches under the panels
    fig, axes = pyplot().subplots(nrows, ncols, figsize=(size * ncols, size * nrows + legend_h), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, v, t) in enumerate(zip(axes.flat, preds, truths)):
        if v.ndim != 2:
            raise ValueError(f"slice {i} must be 2-D (R, R), got shape {v.shape}")
        v = v.T  # [x, y] -> image rows = y
        lim = max(float(np.nanmax(np.abs(v))) if np.isfinite(v).any() else 0.0, 1e-6)
        ax.imshow(v, origin="lower", extent=extent, cmap="RdBu", vmin=-lim, vmax=lim)
        if np.nanmin(v) < 0 < np.nanmax(v):
            ax.contour(v, levels=[0.0], colors="k", linewidths=1.2, extent=extent, origin="lower")
        if t is not None:
            if t.ndim != 2:
                raise ValueError(f"truth slice {i} must be 2-D (R, R), got shape {t.shape}")
            t = t.T
            if np.nanmin(t) < 0 < np.nanmax(t):
                ax.contour(
                    t, levels=[0.0], colors=truth_color, linewidths=1.2, linestyles="--", extent=extent, origin="lower"
                )
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7)
    if truth_slices is not None:
        handles = [
            Line2D([], [], color="k", lw=1.2, label="GON zero level"),
            Line2D([], [], color=truth_color, lw=1.2, ls="--", label="ground truth zero level"),
        ]
        axes.flat[0].legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(0.0, -0.02),
            fontsize=6,
            frameon=False,
            ncol=1,
            borderaxespad=0.0,
            handlelength=2.0,
        )
    return save_figure(fig, path)
