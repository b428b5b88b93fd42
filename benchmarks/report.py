"""Redraw every results table of the README and the documentation from the JSON it cites.

    python benchmarks/report.py            # rewrite the tables in README.md and docs/**/*.md
    python benchmarks/report.py --check    # exit 1 if a table differs from its data (CI)

A table lives between two markers in a Markdown file::

    <!-- report: NAME -->
    ...the table, written by this script...
    <!-- /report -->

``NAME`` is one of :data:`TABLES`, optionally followed by the JSON files it draws from
(``<!-- report: ablation docs/figures/image_ablation_1.json -->``; ``PATH#A,B`` draws only the
variants A and B of an ablation file, in that order); each table function reads
the JSON files it cites (paths relative to the repository root) and returns Markdown, so a
number on a page cannot drift from its data: change the JSON, rerun this script, and the page
changes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"(<!-- report: ([\w-]+)((?: [^ >]+)*) -->\n)(.*?)(<!-- /report -->)", re.S)


def _load(root: Path, rel: str) -> dict:
    return json.loads((root / rel).read_text())


def _link(rel: str, page: Path, root: Path) -> str:
    """``rel`` (from the root) as a link relative to the page that shows it."""
    target = (root / rel).resolve()
    return Path(os.path.relpath(target, page.parent.resolve())).as_posix()


def _f(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


_SUP = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _sci(v, digits: int = 1) -> str:
    """``v`` as ``7.6 × 10⁻⁴``."""
    if v is None:
        return "n/a"
    m, e = f"{v:.{digits}e}".split("e")
    return f"{m} × 10{str(int(e)).translate(_SUP)}"


def _pick(root: Path, arg: str) -> tuple[str, dict, list[str]]:
    """``PATH`` or ``PATH#A,B``: the file, its JSON and the variants to draw (all, in file order, by default)."""
    rel, _, names = arg.partition("#")
    data = _load(root, rel)
    return rel, data, names.split(",") if names else list(data["results"])


def _links(paths, page: Path, root: Path) -> str:
    rels = dict.fromkeys(p.partition("#")[0] for p in paths)
    return ", ".join(f"[{Path(rel).name}]({_link(rel, page, root)})" for rel in rels)


#: options of the ablation scripts' own harness, not of the experiment (with the number of values each takes)
_HARNESS = {
    "--seconds": 1,
    "--device": 1,
    "--quiet": 0,
    "--out": 1,
    "--overwrite": 0,
    "--eval-every": 1,
    "--snapshots": 1,
    "--keep-checkpoints": 1,
}


def _common(data: dict) -> str:
    """An ablation file's budget and common options, less those of the harness."""
    words, kept = shlex.split(data.get("common") or ""), []
    while words:
        w = words.pop(0)
        if w in _HARNESS:
            del words[: _HARNESS[w]]
        elif (w, words[:1]) in (("--steps", ["1000000"]), ("--schedule-by", ["time"])):
            del words[:1]
        else:
            kept.append(w)
    budget = f"{data['seconds']:g} s each" if data.get("seconds") else ""
    return ", ".join(x for x in (budget, f"common: `{' '.join(kept)}`" if kept else "") if x)


# -- the tables ---------------------------------------------------------------------------------------------------
#: the latent-size frontier's methods, in the order its tables show them
FRONTIER_METHODS = {
    "pca": "PCA",
    "gon": "GON, plain step",
    "gon_gn": "GON, Gauss–Newton step",
    "gon_gn2": "GON, 2 GN steps",
    "gon_gn_enc": "GON, GN step, encoded in more",
    "autoencoder": "autoencoder",
    "autodecoder": "auto-decoder",
}


IMAGES, SHAPES, CLAIMS = "docs/findings/images.md", "docs/findings/shapes.md", "docs/findings/paper-claims.md"


def headline(root: Path, page: Path, *paths: str) -> str:
    """The README's results: each default run beside its simplest alternative."""
    mn, fa = "docs/figures/mnist_metrics.json", "docs/figures/fashion_metrics.json"
    sdf, sr = "docs/figures/sdf_baseline_default_run.json", "docs/figures/superres_metrics.json"
    pc = "docs/figures/paper_claims_quick.json"
    m, f, s, r, p = (_load(root, x) for x in (mn, fa, sdf, sr, pc))
    rows = [
        "| use (default command) | GON | simplest alternative | margin | evidence |",
        "|---|---|---|---|---|",
        f"| MNIST, test PSNR / SSIM | {m['test_psnr']:.2f} dB / {m['test_ssim']:.3f} | PCA, same latent size: "
        f"{m['pca_test_psnr']:.2f} dB / {m['pca_test_ssim']:.3f} | {m['pca_margin_psnr']:+.2f} dB | "
        f"[page]({_link(IMAGES, page, root)}), [json]({_link(mn, page, root)}) |",
        f"| Fashion-MNIST, test PSNR / SSIM | {f['test_psnr']:.2f} dB / {f['test_ssim']:.3f} | PCA, same latent "
        f"size: {f['pca_test_psnr']:.2f} dB / {f['pca_test_ssim']:.3f} | {f['pca_margin_psnr']:+.2f} dB | "
        f"[page]({_link(IMAGES, page, root)}), [json]({_link(fa, page, root)}) |",
        f"| shapes, sign IoU on a 32³ grid, train / unseen | {s['grid_train_iou']:.3f} / {s['grid_unseen_iou']:.3f} "
        f"| PCA shape model, same latent size: {s['pca_train_iou']:.3f} / {s['pca_unseen_iou']:.3f} | "
        f"{s['pca_margin_train_iou']:+.3f} / {s['pca_margin_unseen_iou']:+.3f} | "
        f"[page]({_link(SHAPES, page, root)}), [json]({_link(sdf, page, root)}) |",
        f"| super-resolution 14² → 28², test PSNR | {r['psnr_gon']:.2f} dB | bicubic: {r['psnr_bicubic']:.2f} dB | "
        f"{r['psnr_gon_minus_bicubic']:+.2f} dB | [page]({_link(IMAGES, page, root)}), "
        f"[json]({_link(sr, page, root)}) |",
        f"| classifier GON (linear softmax on z), test accuracy | {100 * p['classifier_accuracy']:.1f} % | "
        f"linear softmax on the pixels: {100 * p['linear_pixel_accuracy']:.1f} % | "
        f"{100 * (p['classifier_accuracy'] - p['linear_pixel_accuracy']):+.1f} points | "
        f"[page]({_link(CLAIMS, page, root)}), [json]({_link(pc, page, root)}) |",
    ]
    return "\n".join(rows) + "\n"


def image_frontier(root: Path, page: Path, *paths: str) -> str:
    """Test PSNR / SSIM against the latent size k, per method, on the full test sets."""
    rel = "docs/figures/frontier/image.json"
    cells = _load(root, rel)["cells"]
    ks = sorted({c["k"] for c in cells.values()})
    rows = ["| data set, method | " + " | ".join(f"k = {k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for ds in sorted({c["dataset"] for c in cells.values()}):
        for method, label in FRONTIER_METHODS.items():
            got = {c["k"]: c for c in cells.values() if c["dataset"] == ds and c["method"] == method}
            if not got:
                continue
            vals = [f"{got[k]['test_psnr']:.2f} / {got[k]['test_ssim']:.3f}" if k in got else "" for k in ks]
            rows.append(f"| {ds}, {label} | " + " | ".join(vals) + " |")
    rows.append(f"\nTest PSNR (dB) / SSIM. Data: [frontier/image.json]({_link(rel, page, root)}).")
    rows += ["\nThe best GON against PCA (dB; goal: ≥ +1 at every k), and the method that gives it:\n"]
    rows += ["| data set | " + " | ".join(f"k = {k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for ds in sorted({c["dataset"] for c in cells.values()}):
        vals = []
        for k in ks:
            pca = cells.get(f"{ds}/{k}/pca")
            gons = [c for c in cells.values() if c["dataset"] == ds and c["k"] == k and c["method"].startswith("gon")]
            best = max(gons, key=lambda c: c["test_psnr"], default=None)
            ok = pca is not None and best is not None
            vals.append(f"{best['test_psnr'] - pca['test_psnr']:+.2f} (`{best['method']}`)" if ok else "")
        rows.append(f"| {ds} | " + " | ".join(vals) + " |")
    return "\n".join(rows) + "\n"


def sdf_frontier(root: Path, page: Path, *paths: str) -> str:
    """The shape frontier: sign IoU on the 32³ grid of each method and the PCA shape model per latent size."""
    rel = "docs/figures/frontier/sdf.json"
    cells = _load(root, rel)["cells"]
    rows = [
        "| k | PCA train / unseen | method | train / unseen | steps | margin train / unseen |",
        "|---|---|---|---|---|---|",
    ]
    iou = lambda c: f"{c['train_grid_iou']:.3f} / {c['unseen_grid_iou']:.3f}"  # noqa: E731
    order = list(FRONTIER_METHODS)
    for k in sorted({c["k"] for c in cells.values()}):
        pca = next((c for c in cells.values() if c["k"] == k and c["method"] == "pca"), None)
        others = sorted(
            (c for c in cells.values() if c["k"] == k and c["method"] != "pca"), key=lambda c: order.index(c["method"])
        )
        for i, c in enumerate(others or [None]):
            first = f"| {k} | {iou(pca) if pca else ''} |" if i == 0 else "| | |"
            if c is None:
                rows.append(first + " | | | |")
                continue
            margin = ""
            if pca:
                margin = (
                    f"{c['train_grid_iou'] - pca['train_grid_iou']:+.3f} / "
                    f"{c['unseen_grid_iou'] - pca['unseen_grid_iou']:+.3f}"
                )
            label = FRONTIER_METHODS[c["method"]] + (f" (`{c['options']}`)" if c.get("options") else "")
            if c.get("encode_iterations"):
                label += f", {c['encode_iterations']} Adam steps per unseen shape"
            steps = f"{c['steps']:,}" if c.get("steps") else ""
            rows.append(f"{first} {label} | {iou(c)} | {steps} | {margin} |")
    rows.append(f"\nSign IoU on the 32³ grid. Data: [frontier/sdf.json]({_link(rel, page, root)}).")
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


def image_frontier_cells(root: Path, page: Path, *paths: str) -> str:
    """The frontier's learned cells beside PCA of the same k: steps, figures and the time to encode."""
    rel = "docs/figures/frontier/image.json"
    cells = _load(root, rel)["cells"].values()
    learned = {(c["dataset"], c["k"]) for c in cells if c["method"] != "pca"}
    order = list(FRONTIER_METHODS)
    rows = ["| cell | steps | test PSNR / SSIM | seconds to encode the test set |", "|---|---|---|---|"]
    for c in sorted(
        (c for c in cells if (c["dataset"], c["k"]) in learned),
        key=lambda c: (c["dataset"], c["k"], order.index(c["method"])),
    ):
        label = f"{c['dataset']}, {FRONTIER_METHODS[c['method']]}, k = {c['k']}"
        label += f" (`{c['options']}`)" if c.get("options") else ""
        label += f", {c['decoder']}" if c.get("decoder") else ""
        label += f", lr {c['lr']:g}" if c.get("lr") else ""
        by = sorted((c.get("by_test_steps") or {}).items(), key=lambda kv: int(kv[0]))
        if by:
            label += f": {' / '.join(k for k, _ in by)} Adam steps per test image ({c['test_images']:,} test images)"
            fig = "; ".join(f"{v['test_psnr']:.2f} / {v['test_ssim']:.3f}" for _, v in by)
            enc = " / ".join(f"{v['encode_seconds']:,.0f}" for _, v in by) + " (scaled to the whole test set)"
        else:
            fig, enc = f"{c['test_psnr']:.2f} / {c['test_ssim']:.3f}", f"{c['encode_seconds']:.2f}"
        rows.append(f"| {label} | {_f(c.get('steps'), ',')} | {fig} | {enc} |")
    rows.append(f"\nTest PSNR (dB) / SSIM. Data: [frontier/image.json]({_link(rel, page, root)}).")
    return "\n".join(rows) + "\n"


def image_convergence(root: Path, page: Path, *paths: str) -> str:
    """The paper's Figure 6: the default runs' test PSNR after a few seconds of training (``convergence``)."""
    runs = [("MNIST", "docs/figures/mnist_metrics.json"), ("Fashion-MNIST", "docs/figures/fashion_metrics.json")]
    conv = [_load(root, rel)["convergence"] for _, rel in runs]
    rows = [
        "| seconds of training | " + " | ".join(f"{c['target_seconds']:g}" for c in conv[0]) + " |",
        "|---|" + "---|" * len(conv[0]),
    ]
    for (name, _), cs in zip(runs, conv):
        rows.append(f"| {name} (step) | " + " | ".join(f"{c['psnr']:.2f} dB ({c['step']:,})" for c in cs) + " |")
    rows.append(f"\nData: `convergence` in {_links([rel for _, rel in runs], page, root)}.")
    return "\n".join(rows) + "\n"


def sdf_run(root: Path, page: Path, *paths: str) -> str:
    """An SDF run's ``metrics.json`` (default: the default run's): its training and unseen shapes."""
    rel = paths[0] if paths else "docs/figures/sdf_metrics.json"
    m = _load(root, rel)
    step = f"one Gauss–Newton step, λ = {m['gauss_newton']:g}" if m.get("gauss_newton") else "one gradient step"
    rows = ["| | IoU | Chamfer | normal consistency | nearest own ground truth |", "|---|---|---|---|---|"]
    for part, label in (("train", "training shapes"), ("unseen", f"unseen shapes (held-out family, {step})")):
        s, iou = m[part], m[part]["per_shape"]["iou"]
        rows.append(
            f"| {label}, {s['num']} evaluated | {s['iou']:.3f} ({min(iou):.2f}–{max(iou):.2f} each) | "
            f"{_sci(s['chamfer'])} | {_f(s['normal_consistency'], '.3f')} | "
            f"{round(s['nearest_own_truth'] * s['num'])} of {s['num']} |"
        )
    rows.append(
        f"\n{m['steps']:,} steps in {m['train_seconds']:.0f} s ({m['steps'] / m['train_seconds']:.1f} steps/s on that "
        f"machine). Data: [{Path(rel).name}]({_link(rel, page, root)})."
    )
    return "\n".join(rows) + "\n"


def sdf_goals(root: Path, page: Path, *paths: str) -> str:
    """The SDF default run against the goals of the CPU defaults (the margins from the baseline run)."""
    mr, br = "docs/figures/sdf_metrics.json", "docs/figures/sdf_baseline_default_run.json"
    m, b = _load(root, mr), _load(root, br)
    t, u = m["train"], m["unseen"]
    own = round(t["nearest_own_truth"] * t["num"])
    mt, mu = b["pca_margin_train_iou"], b["pca_margin_unseen_iou"]
    goals = [
        (
            "train IoU ≥ 0.90, Chamfer ≤ 2 × 10⁻³, every training mesh nearest its own ground truth",
            f"{t['iou']:.3f}, {_sci(t['chamfer'])}, {own} of {t['num']}",
            t["iou"] >= 0.9 and t["chamfer"] <= 2e-3 and own == t["num"],
        ),
        ("unseen IoU ≥ 0.75 (one step)", f"{u['iou']:.3f} ({u['num']} shapes)", u["iou"] >= 0.75),
        (
            "≥ PCA + 0.1 IoU on training shapes, ≥ PCA + 0.05 on unseen ones",
            f"{mt:+.3f}, {mu:+.3f}",
            mt >= 0.1 and mu >= 0.05,
        ),
    ]
    rows = ["| goal (CPU defaults, procedural shapes) | measured | |", "|---|---|---|"]
    rows += [f"| {g} | {v} | {'met' if ok else 'not met'} |" for g, v, ok in goals]
    rows.append(f"\nData: {_links([mr], page, root)}, {_links([br], page, root)} (the margins).")
    return "\n".join(rows) + "\n"


def sdf_per_shape(root: Path, page: Path, *paths: str) -> str:
    """Each shape of an SDF run (the ``metrics.json`` given): IoU and Chamfer, the unseen ones marked."""
    rel = paths[0]
    m = _load(root, rel)
    names, iou, cd = [], [], []
    for part in ("train", "unseen"):
        p = m[part]["per_shape"]
        names += [n + (" (unseen)" if part == "unseen" else "") for n in p["names"]]
        iou, cd = iou + p["iou"], cd + p["chamfer"]
    rows = [
        "| shape | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        "| IoU | " + " | ".join(f"{v:.3f}" for v in iou) + " |",
        "| Chamfer | " + " | ".join(_sci(v) for v in cd) + " |",
        f"\nData: [{Path(rel).name}]({_link(rel, page, root)}).",
    ]
    return "\n".join(rows) + "\n"


def sdf_curves(root: Path, page: Path, *paths: str) -> str:
    """Sign IoU on each shape's own points during training (``curve``), one row a variant (``PATH#A,B``)."""
    rows, steps = [], []
    for arg in paths:
        rel, data, names = _pick(root, arg)
        for name in names:
            r = data["results"][name]
            curve = {c["step"]: c for c in r["curve"]}
            steps = steps or sorted(curve)
            opts = (r.get("options") or data.get("variants", {}).get(name) or "").strip()
            cells = [
                f"{curve[s]['unseen_sign_iou']:.2f} / {curve[s]['train_sign_iou']:.2f}" if s in curve else ""
                for s in steps
            ]
            rows.append(f"| {name}" + (f" (`{opts}`)" if opts else "") + " | " + " | ".join(cells) + " |")
    head = ["| step: unseen / train | " + " | ".join(f"{s:,}" for s in steps) + " |", "|---|" + "---|" * len(steps)]
    return "\n".join(head + rows) + f"\n\nData: `curve` in {_links(paths, page, root)}.\n"


def sdf_vs_autodecoder(root: Path, page: Path, *paths: str) -> str:
    """``benchmarks/sdf_vs_autodecoder.py`` (the JSON given): each method's fit, generalisation and encoding time."""
    rel = paths[0]
    d = _load(root, rel)
    res = d["results"]
    key = "chamfer_deepsdf" if any(r.get("train_chamfer_deepsdf") is not None for r in res.values()) else "chamfer"
    cd = "Chamfer (DeepSDF's frame)" if key == "chamfer_deepsdf" else "Chamfer"
    labels = {
        "gon": "GON (one Gauss–Newton step)",
        "autodecoder": f"auto-decoder ({d['encode_iterations']} Adam steps per unseen shape)",
    }
    rows = [
        f"| {d['seconds']:g} s each | steps | train {cd} | train IoU | unseen {cd} | unseen IoU | "
        "encoding the unseen shapes |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in res.items():
        rows.append(
            f"| {labels.get(name, name)} | {r['steps']:,} | {_sci(r['train_' + key])} | {r['train_iou']:.3f} | "
            f"{_sci(r['unseen_' + key])} | {r['unseen_iou']:.3f} | {r['unseen_encode_seconds']:.2f} s |"
        )
    rows.append(f"\nData: [{Path(rel).name}]({_link(rel, page, root)}).")
    return "\n".join(rows) + "\n"


def sdf_encode_sweep(root: Path, page: Path, *paths: str) -> str:
    """The trained auto-decoder with fewer Adam steps per unseen shape, beside the GON's one step."""
    rel = paths[0]
    res = _load(root, rel)["results"]
    sweep = sorted(res["autodecoder"]["unseen_by_encode_iterations"].items(), key=lambda kv: int(kv[0]))
    g = res["gon"]
    cols = [(k, v["iou"], v["chamfer"], v["encode_seconds"]) for k, v in sweep]
    cols.append(("GON, one Gauss–Newton step", g["unseen_iou"], g["unseen_chamfer"], g["unseen_encode_seconds"]))
    rows = [
        "| Adam steps per unseen shape | " + " | ".join(c[0] for c in cols) + " |",
        "|---|" + "---|" * len(cols),
        "| unseen IoU | " + " | ".join(f"{c[1]:.3f}" for c in cols) + " |",
        "| unseen Chamfer | " + " | ".join(_sci(c[2]) for c in cols) + " |",
        "| encoding the unseen shapes | " + " | ".join(f"{c[3]:.2f} s" for c in cols) + " |",
        f"\nData: `unseen_by_encode_iterations` in [{Path(rel).name}]({_link(rel, page, root)}).",
    ]
    return "\n".join(rows) + "\n"


def sdf_subsets(root: Path, page: Path, *paths: str) -> str:
    """``benchmarks/sdf_subsets.py`` JSON files: one row a run, its meshes and the shape-space checks."""
    rows = [
        "| meshes | training shapes | batch | steps | zero crossing | latent sensitivity | identified | "
        "train sign IoU | collapsed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rel in paths:
        d = _load(root, rel)
        for r in d["runs"]:
            rows.append(
                f"| {', '.join(r['meshes'])} | {r['num_train']} | {r['batch_size']} | {d['steps']:,} | "
                f"{r['zero_crossing']:.2f} | {r['latent_sensitivity']:.2f} | {r['identified']:.2f} | "
                f"{r['train_sign_iou']:.3f} | {'yes' if r['collapsed'] else 'no'} |"
            )
    return "\n".join(rows) + f"\n\nData: {_links(paths, page, root)}.\n"


def paper_claims(root: Path, page: Path, *paths: str) -> str:
    """``benchmarks/paper_claims.py --quick``: what each of the paper's MNIST claims measured."""
    rel = "docs/figures/paper_claims_quick.json"
    p = _load(root, rel)

    def pc(key: str) -> str:
        return f"{100 * p[key]:.1f} %"

    rows = [
        "| claim | measured |",
        "|---|---|",
        f"| (a) MNIST by a tiny SIREN (3 sine layers of 32, latent 32), {p['tiny_siren_steps']:,} steps | "
        f"{p['tiny_siren_params']:,} parameters (the paper's: {p['tiny_siren_paper_params']:,}); test PSNR "
        f"{p['tiny_siren_test_psnr']:.2f} dB, train {p['tiny_siren_train_psnr']:.2f} dB (curves below) |",
        f"| (b) GON vs an autoencoder whose encoder matches the decoder's size, same decoder (SIREN 3×{p['hidden']}), "
        f"{p['ae_gon_steps']:,} steps each | test MSE GON {p['gon_test_mse']:.4f} ({p['gon_params']:,} parameters) "
        f"vs autoencoder {p['ae_test_mse']:.4f} ({p['ae_params']:,} parameters) |",
        f"| (c) normality of latents (Figure 8; z-scored per dimension, pooled) | GON skew {p['latent_skew']:.3f}, "
        f"excess kurtosis {p['latent_excess_kurtosis']:.3f}; VAE encoder μ skew {p['vae_latent_skew']:.3f}, "
        f"excess kurtosis {p['vae_latent_excess_kurtosis']:.3f} |",
        f"| (d) classifier GON (linear softmax on z), test accuracy | trained solely as a classifier "
        f"({p['classifier_steps']:,} steps, lr {p['classifier_lr']:g} {p['classifier_lr_schedule']}, inner weight "
        f"{p['classifier_inner_scale']:g}): {pc('classifier_accuracy')}, against its bound, a linear softmax on the "
        f"pixels trained in the same run: {pc('linear_pixel_accuracy')}; jointly ({p['joint_steps']:,} steps): "
        f"{pc('joint_classifier_accuracy')}; 2-D latent (Figure 7): {pc('classifier_2d_accuracy')}; two latent steps "
        f"({p['classifier_k2_steps']:,} steps): {pc('classifier_k2_accuracy')} |",
        f"| (e) variational GON, convolutional decoder at 28², {p['vgon_steps']:,} steps | test −ELBO "
        f"{p['vgon_test_nelbo_nats']:.1f} nats/image (BCE {p['vgon_test_bce_nats']:.1f} + KL "
        f"{p['vgon_test_kl_nats']:.1f}), {p['vgon_bits_per_dim']:.3f} bits/dim |",
        f"\n{p['n_train']:,} training and {p['n_test']:,} test images, {p['total_seconds']:.0f} s in all. "
        f"Data: [paper_claims_quick.json]({_link(rel, page, root)}).",
    ]
    return "\n".join(rows) + "\n"


def paper_claims_tiny(root: Path, page: Path, *paths: str) -> str:
    """Claim (a): the test PSNR of tiny SIRENs during the quick run's training."""
    rel = "docs/figures/paper_claims_quick.json"
    models = _load(root, rel)["tiny_models"]
    steps = [s for s, _ in models[0]["curve"]]
    rows = [
        "| tiny SIREN | parameters | " + " | ".join(f"{s:,}" for s in steps) + " |",
        "|---|---|" + "---|" * len(steps),
    ]
    for m in models:
        c = dict(m["curve"])
        vals = " | ".join(_f(c.get(s), ".2f") for s in steps)
        rows.append(f"| {m['layers']}×{m['hidden']}, latent {m['latent']} | {m['params']:,} | {vals} |")
    rows.append(
        "\nTest PSNR (dB, 1,000 test images) by training step. Data: `tiny_models` in "
        f"[paper_claims_quick.json]({_link(rel, page, root)})."
    )
    return "\n".join(rows) + "\n"


def scaling(root: Path, page: Path, *paths: str) -> str:
    """``benchmarks/scaling.py``: seconds per step by resolution and channels; a cell over the memory limit shows
    what it would have needed."""
    rel = "docs/figures/scaling.json"
    d = _load(root, rel)
    info, cells = d["info"], {(c["resolution"], c["channels"], c["formulation"]): c for c in d["cells"]}
    ratios = {(r["resolution"], r["channels"]): r for r in d["ratios"]}
    forms = {
        "official": "official",
        "exact": "inr_gon exact",
        "mc": "inr_gon MC",
        "official_inner": "official inner pass",
        "inr_gon_inner": "inr_gon inner pass",
    }
    slopes = {(x["formulation"], x["channels"]): x["slope"] for x in d["slopes"]}

    def sec(c: dict) -> str:
        return f"{c['seconds']:#.3g}" if c["status"] == "ok" else f"needs {c['estimated_gib']:.0f} GiB"

    def times(v, spec: str) -> str:
        return "–" if v is None else f"{v:{spec}}×"

    rows = [
        f"| pixels | C | official | inr_gon exact | inr_gon MC {100 * info['fraction']:.0f} % | official inner pass | "
        "inr_gon inner pass | official / exact | official / MC | inner ratio |",
        "|---" * 10 + "|",
    ]
    for ch in info["channels"]:
        for res in info["sizes"]:
            r = ratios[(res, ch)]
            rows.append(
                f"| {res}² | {ch} | " + " | ".join(sec(cells[(res, ch, f)]) for f in forms) + f" | "
                f"{times(r['official_over_exact'], '.1f')} | {times(r['official_over_mc'], '.1f')} | "
                f"{times(r['inner_ratio'], '.0f')} |"
            )
    line = "; ".join(
        f"{label} " + " / ".join(_f(slopes.get((f, c)), ".2f") for c in info["channels"]) for f, label in forms.items()
    )
    rows.append(
        f"\nSeconds per step, B = {info['batch']}. Log–log slope of the seconds against the pixels (C = "
        f"{' / '.join(map(str, info['channels']))}): {line}. Data: [scaling.json]({_link(rel, page, root)})."
    )
    return "\n".join(rows) + "\n"


def render_benchmark(root: Path, page: Path, *paths: str) -> str:
    """``benchmarks/render.py``: seconds, points/s and peak memory of chunked and unchunked renders."""
    rel = "docs/figures/render_benchmark_cpu.json"
    runs = _load(root, rel)
    params = {r["model"]: r["params"] for r in runs if "params" in r}
    rows = [
        "| model | mode | resolution | seconds | points/s | peak MiB | output MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        model = r["model"] + (f" ({params[r['model']]:,} parameters)" if r["model"] in params else "")
        head = f"| {model} | {'one unchunked call' if r['direct'] else '`render`'} | {r['resolution']}² |"
        if "skipped" in r:
            rows.append(f"{head} skipped (estimated {r['skipped']:,.0f} s) | | | |")
        else:
            rows.append(
                f"{head} {r['seconds']:#.3g} | {r['points_per_s']:,.0f} | {r['peak_bytes'] / 2**20:,.1f} | "
                f"{r['output_bytes'] / 2**20:,.1f} |"
            )
    r0 = runs[0]
    rows.append(
        f"\n{r0['device']}, {r0['threads']} thread(s), {r0['batch']} latents, chunks of {r0['chunk_size']:,} points. "
        f"Data: [render_benchmark_cpu.json]({_link(rel, page, root)})."
    )
    return "\n".join(rows) + "\n"


def ablation(root: Path, page: Path, *paths: str) -> str:
    """The runs of ``benchmarks/image_ablation.py`` / ``sdf_ablation.py`` JSON files, one row a
    variant (``PATH#A,B`` draws only variants A and B, in that order): its options, steps and
    figures (images: test PSNR / SSIM and the change against the file's ``base`` variant, or its
    first; shapes: steps/s, train and unseen IoU and Chamfer, and whether the space collapsed)."""
    if not paths:
        raise ValueError(f"{page}: the ablation table needs the JSON files it draws from")
    rows, sdf, notes = [], None, {}
    for arg in paths:
        rel, data, names = _pick(root, arg)
        results, variants = data["results"], data.get("variants", {})
        base = "base" if "base" in results else next(iter(results))
        if _common(data):
            notes.setdefault(_common(data), {})[Path(rel).name] = None
        for name in names:
            r = results[name]
            sdf = "train_iou" in r if sdf is None else sdf
            opts = (r.get("options") or variants.get(name) or "").strip() or "(the common options)"
            if sdf:
                rows.append(
                    f"| {name} | `{opts}` | {_f(r.get('steps'), ',')} | {_f(r.get('steps_per_second'), '.1f')} | "
                    f"{_f(r.get('train_iou'), '.3f')} | {_f(r.get('unseen_iou'), '.3f')} | "
                    f"{_f(r.get('train_chamfer'), '.5f')} | {_f(r.get('unseen_chamfer'), '.5f')} | "
                    f"{'yes' if r.get('collapsed') else 'no'} |"
                )
            else:
                ref, psnr = results[base].get("test_psnr"), r.get("test_psnr")
                delta = "" if ref is None or name == base or psnr is None else f"{psnr - ref:+.2f}"
                failed = " (failed)" if r.get("failed") else ""
                rows.append(
                    f"| {name} | `{opts}` | {_f(r.get('steps'), ',')} | {_f(psnr, '.2f')} / "
                    f"{_f(r.get('test_ssim'), '.3f')}{failed} | {delta} |"
                )
    if sdf:
        head = [
            "| variant | options | steps | steps/s | train IoU | unseen IoU | train Chamfer | unseen Chamfer | "
            "collapsed |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        legend = ""
    else:
        head = ["| variant | options | steps | test PSNR / SSIM | against base (dB) |", "|---|---|---|---|---|"]
        legend = " Against base: the change from the `base` variant of the row's file, or from its first row."
    runs = "".join(f"\n- {', '.join(names)}: {c}" for c, names in notes.items())
    runs = f"\nEach file's budget and common options:\n{runs}\n" if runs else ""
    return "\n".join(head + rows) + f"\n\nData: {_links(paths, page, root)}.{legend}\n" + runs


def sdf_split(root: Path, page: Path, *paths: str) -> str:
    """``benchmarks/sdf_split.py``: every shape of the test split, per class (the classes' Chamfer
    units differ: real scans keep their original frame), per method."""
    import statistics

    rel = paths[0] if paths else "docs/figures/sdf_split.json"
    d = _load(root, rel)
    methods = d["methods"]
    classes = sorted({r["class"] for m in methods.values() for r in m["per_shape"]})
    head = "| method | " + " | ".join(f"{c}: Chamfer mean / median" for c in classes)
    rows = [head + " | F-score@0.01 | sign IoU | encoding s / shape |", "|---|" + "---|" * (len(classes) + 3)]
    for name, m in methods.items():
        cells = []
        for c in classes:
            ch = [r["chamfer"] for r in m["per_shape"] if r["class"] == c and r["chamfer"] is not None]
            cells.append(f"{statistics.mean(ch):.4g} / {statistics.median(ch):.4g}" if ch else "n/a")
        sm = m["summary"]
        rows.append(
            f"| {name} | " + " | ".join(cells) + f" | {_f(sm['fscore@0.01'] and sm['fscore@0.01']['mean'], '.3f')} | "
            f"{sm['sign_iou']['mean']:.3f} | {sm['encode_seconds']['mean']:.3f} |"
        )
    n_test = sum(len(ids) for cl in d["test"].values() for ids in cl.values())
    n_train = sum(len(ids) for cl in d["train"].values() for ids in cl.values())
    rows.append(
        f"\n{n_train} training and {n_test} test shapes, {d['seconds']:g} s of training per model. "
        f"Data: [{Path(rel).name}]({_link(rel, page, root)})."
    )
    return "\n".join(rows) + "\n"


def sdf_streaming(root: Path, page: Path, *paths: str) -> str:
    """``benchmarks/sdf_streaming.py``: steps/s and peak resident memory, pools streamed or held."""
    rel = paths[0] if paths else "docs/figures/sdf_streaming.json"
    d = _load(root, rel)
    base = {r["mode"]: r for r in d["results"]}.get("off")
    rows = [
        "| pools | points per pool | steps/s | vs in memory | set-up s | peak RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    what = {"off": "in memory", "on": "streamed", "on-all": "streamed, every sample"}
    for r in d["results"]:
        ratio = f"{r['steps_per_second'] / base['steps_per_second']:.3f}" if base else "n/a"
        rows.append(
            f"| {what.get(r['mode'], r['mode'])} | {r['pool']:,} | {r['steps_per_second']:.2f} | {ratio} | "
            f"{r['setup_seconds']:.1f} | {r['peak_rss_mib']:,.0f} |"
        )
    rows.append(
        f"\n{d['shapes']:,} shapes x {d['samples']:,} samples, {d['steps']} steps of the CPU preset each, "
        f"{d['cpu_threads']} CPU threads. Data: [{Path(rel).name}]({_link(rel, page, root)})."
    )
    return "\n".join(rows) + "\n"


def sdf_completion(root: Path, page: Path, *paths: str) -> str:
    """``benchmarks/sdf_completion.py``: IoU (and Chamfer, where recorded) of completions from depth
    views against full observation."""
    rel = paths[0] if paths else "docs/figures/sdf_completion.json"
    d = _load(root, rel)
    chamfer = any(t.get("chamfer_median") is not None for t in d["summary"])
    energy = any("view_energy_mean" in t for t in d["summary"])  # the fit to one view's samples
    head = "| encoding | views | IoU | of full observation |" + (" Chamfer ×10⁻³, median |" if chamfer else "")
    head += " one view's energy ×10⁻³ |" if energy else ""
    rule = "|---|---|---|---|" + ("---|" if chamfer else "") + ("---|" if energy else "")
    rows = [head + " seconds / shape |", rule + "---|"]
    for t in d["summary"]:
        views = "all samples" if t["views"] == 0 else str(t["views"])
        cd = ""
        if chamfer:
            cd = " n/a |" if t.get("chamfer_median") is None else f" {t['chamfer_median'] * 1e3:.2f} |"
        if energy:
            cd += " |" if "view_energy_mean" not in t else f" {t['view_energy_mean'] * 1e3:.2f} |"
        rows.append(
            f"| {t['method']} | {views} | {t['iou_mean']:.3f} | {_f(t['of_full'], '.2f')} |{cd}"
            f" {t['seconds_mean']:.3f} |"
        )
    source, split = d.get("source", "procedural"), d.get("split", "unseen")
    what = {
        ("procedural", "unseen"): "held-out shapes of the procedural family",
        ("procedural", "train"): "training shapes of the procedural family",
        ("meshes", "unseen"): "unseen meshes of the model's run",
        ("meshes", "train"): "training meshes of the model's run (known shapes, seen anew)",
    }.get((source, split), f"{split} shapes ({source})")
    rows.append(
        f"\n{d['shapes']} {what}, {d['size']}² depth maps, offset {d['offset']}, "
        f"{d['free']} free-space sample(s) per seen pixel; model {d['model']}. "
        f"Data: [{Path(rel).name}]({_link(rel, page, root)})."
    )
    return "\n".join(rows) + "\n"


#: table name -> function(root, page, *json paths) -> Markdown
TABLES = {
    "headline": headline,
    "image-frontier": image_frontier,
    "sdf-frontier": sdf_frontier,
    "image-default-runs": image_default_runs,
    "sdf-baseline": sdf_baseline,
    "superres": superres,
    "image-frontier-cells": image_frontier_cells,
    "image-convergence": image_convergence,
    "sdf-run": sdf_run,
    "sdf-goals": sdf_goals,
    "sdf-per-shape": sdf_per_shape,
    "sdf-curves": sdf_curves,
    "sdf-vs-autodecoder": sdf_vs_autodecoder,
    "sdf-encode-sweep": sdf_encode_sweep,
    "sdf-subsets": sdf_subsets,
    "paper-claims": paper_claims,
    "paper-claims-tiny": paper_claims_tiny,
    "scaling": scaling,
    "render-benchmark": render_benchmark,
    "ablation": ablation,
    "sdf-split": sdf_split,
    "sdf-streaming": sdf_streaming,
    "sdf-completion": sdf_completion,
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
