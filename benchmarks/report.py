"""Redraw every results table of the README and the documentation from the JSON it cites.

    python benchmarks/report.py            # rewrite the tables in README.md and docs/**/*.md
    python benchmarks/report.py --check    # exit 1 if a table differs from its data (CI)

A table lives between two markers in a Markdown file::

    <!-- report: NAME -->
    ...the table, written by this script...
    <!-- /report -->

``NAME`` is one of :data:`TABLES`, optionally followed by the JSON files it draws from
(``<!-- report: ablation docs/figures/image_ablation_1.json -->``); each table function reads
the JSON files it cites (paths relative to the repository root) and returns Markdown, so a
number on a page cannot drift from its data: change the JSON, rerun this script, and the page
changes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"(<!-- report: ([\w-]+)((?: [^ >]+)*) -->\n)(.*?)(<!-- /report -->)", re.S)


def _load(root: Path, rel: str) -> dict:
    return json.loads((root / rel).read_text())


def _link(rel: str, page: Path, root: Path) -> str:
    """``rel`` (from the root) as a link relative to the page that shows it."""
    target = (root / rel).resolve()
    return Path(_relpath(target, page.parent.resolve())).as_posix()


def _relpath(target: Path, start: Path) -> str:
    import os

    return os.path.relpath(target, start)


def _f(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


# -- the tables ---------------------------------------------------------------------------------------------------
def headline(root: Path, page: Path, *paths: str) -> str:
    """The README's results: each default run beside its simplest alternative."""
    mn, fa = "docs/figures/mnist_metrics.json", "docs/figures/fashion_metrics.json"
    sdf, sr = "docs/figures/sdf_baseline_default_run.json", "docs/figures/superres_metrics.json"
    pc = "docs/figures/paper_claims_quick.json"
    m, f, s, r, p = (_load(root, x) for x in (mn, fa, sdf, sr, pc))
    rows = [
        "| use (default command) | GON | simplest alternative | margin | data |",
        "|---|---|---|---|---|",
        f"| MNIST, test PSNR / SSIM | {m['test_psnr']:.2f} dB / {m['test_ssim']:.3f} | PCA, same latent size: "
        f"{m['pca_test_psnr']:.2f} dB / {m['pca_test_ssim']:.3f} | {m['pca_margin_psnr']:+.2f} dB | "
        f"[json]({_link(mn, page, root)}) |",
        f"| Fashion-MNIST, test PSNR / SSIM | {f['test_psnr']:.2f} dB / {f['test_ssim']:.3f} | PCA, same latent "
        f"size: {f['pca_test_psnr']:.2f} dB / {f['pca_test_ssim']:.3f} | {f['pca_margin_psnr']:+.2f} dB | "
        f"[json]({_link(fa, page, root)}) |",
        f"| shapes, sign IoU on a 32³ grid, train / unseen | {s['grid_train_iou']:.3f} / {s['grid_unseen_iou']:.3f} "
        f"| PCA shape model, same latent size: {s['pca_train_iou']:.3f} / {s['pca_unseen_iou']:.3f} | "
        f"{s['pca_margin_train_iou']:+.3f} / {s['pca_margin_unseen_iou']:+.3f} | [json]({_link(sdf, page, root)}) |",
        f"| super-resolution 14² → 28², test PSNR | {r['psnr_gon']:.2f} dB | bicubic: {r['psnr_bicubic']:.2f} dB | "
        f"{r['psnr_gon_minus_bicubic']:+.2f} dB | [json]({_link(sr, page, root)}) |",
        f"| classifier GON (linear softmax on z), test accuracy | {100 * p['classifier_accuracy']:.1f} % | "
        f"linear softmax on the pixels: {100 * p['linear_pixel_accuracy']:.1f} % | "
        f"{100 * (p['classifier_accuracy'] - p['linear_pixel_accuracy']):+.1f} points | "
        f"[json]({_link(pc, page, root)}) |",
    ]
    return "\n".join(rows) + "\n"


def image_frontier(root: Path, page: Path, *paths: str) -> str:
    """Test PSNR / SSIM against the latent size k, per method, on the full test sets."""
    rel = "docs/figures/frontier/image.json"
    cells = _load(root, rel)["cells"]
    ks = sorted({c["k"] for c in cells.values()})
    names = {
        "pca": "PCA",
        "gon": "GON, plain step",
        "gon_gn": "GON, Gauss–Newton step",
        "gon_gn2": "GON, 2 GN steps",
        "autoencoder": "autoencoder",
        "autodecoder": "auto-decoder",
    }
    rows = ["| data set, method | " + " | ".join(f"k = {k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for ds in sorted({c["dataset"] for c in cells.values()}):
        for method, label in names.items():
            got = {c["k"]: c for c in cells.values() if c["dataset"] == ds and c["method"] == method}
            if not got:
                continue
            vals = [f"{got[k]['test_psnr']:.2f} / {got[k]['test_ssim']:.3f}" if k in got else "" for k in ks]
            rows.append(f"| {ds}, {label} | " + " | ".join(vals) + " |")
    rows.append(f"\nTest PSNR (dB) / SSIM. Data: [frontier/image.json]({_link(rel, page, root)}).")
    return "\n".join(rows) + "\n"


def image_default_runs(root: Path, page: Path, *paths: str) -> str:
    """The default image runs beside PCA of the same latent size."""
    rows = [
        "| default run | steps | GON test PSNR / SSIM | PCA, same k | margin | PCA's cost | data |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rel in (
        ("MNIST", "docs/figures/mnist_metrics.json"),
        ("Fashion-MNIST", "docs/figures/fashion_metrics.json"),
    ):
        m = _load(root, rel)
        rows.append(
            f"| {name} | {m.get('steps', 'n/a'):,} | {m['test_psnr']:.2f} dB / {m['test_ssim']:.3f} | "
            f"{m['pca_test_psnr']:.2f} dB / {m['pca_test_ssim']:.3f} | {m['pca_margin_psnr']:+.2f} dB | "
            f"{_f(m.get('pca_seconds'), '.1f')} s | [json]({_link(rel, page, root)}) |"
        )
    return "\n".join(rows) + "\n"


def sdf_baseline(root: Path, page: Path, *paths: str) -> str:
    """The default SDF run beside the PCA shape model of its latent size."""
    rel = "docs/figures/sdf_baseline_default_run.json"
    s = _load(root, rel)
    rows = [
        "| default SDF run | train | unseen |",
        "|---|---|---|",
        f"| GON, sign IoU on the {s['pca_grid']}³ grid | {s['grid_train_iou']:.3f} | {s['grid_unseen_iou']:.3f} |",
        f"| PCA shape model, {s['pca_components']} components ({s['pca_num_train']} shapes, "
        f"{s['pca_seconds']:.1f} s) | {s['pca_train_iou']:.3f} | {s['pca_unseen_iou']:.3f} |",
        f"| margin | {s['pca_margin_train_iou']:+.3f} | {s['pca_margin_unseen_iou']:+.3f} |",
        f"| GON, volumetric IoU (meshes) | {s['train_iou']:.3f} | {s['unseen_iou']:.3f} |",
        f"\n{s['steps']:,} steps in {s['train_seconds']:.0f} s. Data: [json]({_link(rel, page, root)}).",
    ]
    return "\n".join(rows) + "\n"


def superres(root: Path, page: Path, *paths: str) -> str:
    """The super-resolution run beside classical upsampling of the same input."""
    rel = "docs/figures/superres_metrics.json"
    r = _load(root, rel)
    methods = ("gon", "bicubic", "bilinear", "nearest")
    rows = [
        "| 14² → 28², MNIST test set | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
        "| PSNR (dB) | " + " | ".join(f"{r[f'psnr_{m}']:.2f}" for m in methods) + " |",
        "| SSIM | " + " | ".join(f"{r[f'ssim_{m}']:.3f}" for m in methods) + " |",
        f"\nData: [superres_metrics.json]({_link(rel, page, root)}).",
    ]
    return "\n".join(rows) + "\n"


def ablation(root: Path, page: Path, *paths: str) -> str:
    """The runs of ``benchmarks/image_ablation.py`` / ``sdf_ablation.py`` JSON files, one row a
    variant: its options, steps and figures (images: test PSNR / SSIM and the change against the
    file's ``base``; shapes: train and unseen IoU and Chamfer, and whether the space collapsed)."""
    if not paths:
        raise ValueError(f"{page}: the ablation table needs the JSON files it draws from")
    rows, sdf = [], None
    for rel in paths:
        data = _load(root, rel)
        results, variants = data["results"], data.get("variants", {})
        for name, r in results.items():
            sdf = "train_iou" in r if sdf is None else sdf
            opts = (r.get("options") or variants.get(name) or "").strip() or "(the common options)"
            if sdf:
                rows.append(
                    f"| {name} | `{opts}` | {_f(r.get('steps'), ',')} | {_f(r.get('train_iou'), '.3f')} | "
                    f"{_f(r.get('unseen_iou'), '.3f')} | {_f(r.get('train_chamfer'), '.5f')} | "
                    f"{_f(r.get('unseen_chamfer'), '.5f')} | {'yes' if r.get('collapsed') else 'no'} |"
                )
            else:
                base = results.get("base", {}).get("test_psnr")
                psnr = r.get("test_psnr")
                delta = "" if base is None or name == "base" or psnr is None else f"{psnr - base:+.2f}"
                failed = " (failed)" if r.get("failed") else ""
                rows.append(
                    f"| {name} | `{opts}` | {_f(r.get('steps'), ',')} | {_f(psnr, '.2f')} / "
                    f"{_f(r.get('test_ssim'), '.3f')}{failed} | {delta} |"
                )
    if sdf:
        head = [
            "| variant | options | steps | train IoU | unseen IoU | train Chamfer | unseen Chamfer | collapsed |",
            "|---|---|---|---|---|---|---|---|",
        ]
    else:
        head = ["| variant | options | steps | test PSNR / SSIM | against base (dB) |", "|---|---|---|---|---|"]
    links = ", ".join(f"[{Path(rel).name}]({_link(rel, page, root)})" for rel in paths)
    return "\n".join(head + rows) + f"\n\nData: {links}.\n"


#: table name -> function(root, page, *json paths) -> Markdown
TABLES = {
    "headline": headline,
    "image-frontier": image_frontier,
    "image-default-runs": image_default_runs,
    "sdf-baseline": sdf_baseline,
    "superres": superres,
    "ablation": ablation,
}


def pages(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def render_page(text: str, page: Path, root: Path) -> str:
    """``text`` with every marked table redrawn (a one-line ``ValueError`` for an unknown table name)."""

    def draw(m: re.Match) -> str:
        name, args = m.group(2), m.group(3).split()
        if name not in TABLES:
            raise ValueError(f"{page}: unknown report table {name!r} (known: {', '.join(TABLES)})")
        return m.group(1) + TABLES[name](root, page, *args) + m.group(5)

    return MARKER.sub(draw, text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only report pages whose tables differ from their data")
    p.add_argument("--root", default=str(ROOT), help="the repository root (default: this checkout)")
    a = p.parse_args(argv)
    root = Path(a.root).resolve()
    stale = []
    for page in pages(root):
        if not page.is_file():
            continue
        text = page.read_text()
        new = render_page(text, page, root)
        if new != text:
            stale.append(page.relative_to(root))
            if not a.check:
                page.write_text(new)
    verb = "differ from their data" if a.check else "rewritten"
    print(f"{len(stale)} page(s) {verb}" + "".join(f"\n  {s}" for s in stale))
    return 1 if a.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
