"""Benchmark: dense vs coarse-to-fine mesh extraction, and mesh SDF sampling speed.

    python benchmarks/mesh.py [--resolutions 128 256] [--mlp-width 64] [--skip-mlp]
                              [--device cpu] [--threads 1]

Extraction: for an analytic CSG shape (Lipschitz 1) and a small SIREN-like MLP (``nn.Sequential``
with sine activations, added to the CSG shape so it has a surface; extracted with
``lipschitz=2``), prints SDF evaluations, seconds and peak extra resident memory (Linux: VmHWM
after resetting it through ``/proc/self/clear_refs``, minus VmRSS before) of both methods and
their ratios, and the largest vertex distance between the two meshes.

Sampling: signed points per second of ``inr_gon.data.meshes.signed_distance`` with libigl on
``$INR_GON_DATA/meshes/bunny.obj`` (else a subdivided icosphere of 327,680 faces), and of the
trimesh fallback on a few hundred points.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ (memory)

from inr_gon import shapes as S  # noqa: E402
from inr_gon.data.meshes import load_mesh, normalize_mesh, sample_sdf, signed_distance  # noqa: E402
from inr_gon.geometry.mesh import extract_mesh  # noqa: E402
from memory import proc_kib, reset_peak  # noqa: E402


def measure(fn):
    """Run ``fn()``; return its result, seconds and peak extra RSS in MiB (None if unavailable)."""
    before = proc_kib("VmRSS")
    ok = reset_peak()
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak = proc_kib("VmHWM")
    extra = (peak - before) / 1024 if ok and peak is not None and before is not None else None
    return result, seconds, extra


class Sine(torch.nn.Module):
    def __init__(self, w0: float = 30.0):
        super().__init__()
        self.w0 = w0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.w0 * x)


class MLPShape(torch.nn.Module):
    """CSG shape plus a small bounded SIREN-like perturbation: ``(N, 3) -> (N,)``."""

    def __init__(self, base, width: int, depth: int = 3, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        layers: list[torch.nn.Module] = [torch.nn.Linear(3, width), Sine(30.0)]
        for _ in range(depth - 1):
            lin = torch.nn.Linear(width, width)
            torch.nn.init.uniform_(lin.weight, -math.sqrt(6 / width) / 30, math.sqrt(6 / width) / 30)
            layers += [lin, Sine(30.0)]
        layers += [torch.nn.Linear(width, 1)]
        self.net = torch.nn.Sequential(*layers)
        self.base = base

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return self.base(p) + 0.002 * torch.tanh(self.net(p)[:, 0])


def _max_vertex_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Largest distance from a vertex of either ``(V, 3)`` set to the other set's nearest one."""
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    return float(max(cKDTree(b).query(a)[0].max(), cKDTree(a).query(b)[0].max()))


def _base_shape():
    return S.SmoothUnion(
        S.Box((0.5, 0.3, 0.2)) - S.Cylinder(0.15, 0.5),
        S.Torus(0.4, 0.1).translate((0.0, 0.0, 0.3)),
        k=0.1,
    )


def run_single(case: str, res: int, method: str, mlp_width: int, device: str, mesh_out: str) -> None:
    """One extraction in this (fresh) process; prints JSON and saves vertices to ``mesh_out``."""
    sdf, lip = (_base_shape(), 1.0) if case == "analytic" else (MLPShape(_base_shape(), mlp_width).to(device), 2.0)
    extract_mesh(sdf, 17, method=method, lipschitz=lip, device=device)  # warm-up (lazy init, thread pools)
    (mesh, stats), seconds, peak = measure(
        lambda: extract_mesh(sdf, res, method=method, lipschitz=lip, return_stats=True, device=device)
    )
    np.save(mesh_out, np.asarray(mesh.vertices))
    print(
        json.dumps(
            {
                "evaluations": stats["evaluations"],
                "seconds": seconds,
                "peak": peak,
                "faces": len(mesh.faces),
            }
        )
    )


def bench_extraction(resolutions, mlp_width: int | None, device: str) -> None:
    cases = [("analytic", "analytic CSG")]
    if mlp_width:
        cases.append(("mlp", f"SIREN-MLP w{mlp_width}"))
    print("\n## Mesh extraction (dense vs coarse_to_fine), each run in a fresh process\n")
    print(f"{'sdf':<18} {'res':>4} {'method':<15} {'evaluations':>12} {'seconds':>8} {'peak MiB':>9} {'faces':>8}")
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for case, name in cases:
            for res in resolutions:
                out = {}
                for method in ("dense", "coarse_to_fine"):
                    path = os.path.join(tmp, f"{case}-{res}-{method}.npy")
                    proc = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--single",
                            case,
                            str(res),
                            method,
                            "--mlp-width",
                            str(mlp_width or 0),
                            "--device",
                            device,
                            "--mesh-out",
                            path,
                            "--threads",
                            str(torch.get_num_threads()),
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    r = json.loads(proc.stdout.strip().splitlines()[-1])
                    r["vertices"] = np.load(path)
                    out[method] = r
                    peak_s = f"{r['peak']:9.0f}" if r["peak"] is not None else f"{'n/a':>9}"
                    print(
                        f"{name:<18} {res:>4} {method:<15} {r['evaluations']:>12,} "
                        f"{r['seconds']:>8.2f} {peak_s} "
                        f"{r['faces']:>8,}",
                        flush=True,
                    )
                d, c = out["dense"], out["coarse_to_fine"]
                mem = d["peak"] / c["peak"] if d["peak"] and c["peak"] else float("nan")
                ratios.append(
                    (
                        name,
                        res,
                        d["evaluations"] / c["evaluations"],
                        d["seconds"] / c["seconds"],
                        mem,
                        _max_vertex_gap(d["vertices"], c["vertices"]),
                    )
                )
    print(f"\n{'sdf':<18} {'res':>4} {'eval ratio':>10} {'time ratio':>10} {'mem ratio':>9} {'max vertex gap':>15}")
    for name, res, er, tr, mr, gap in ratios:
        print(f"{name:<18} {res:>4} {er:>9.1f}x {tr:>9.2f}x {mr:>8.2f}x {gap:>15.2e}")


def bench_sampling() -> None:
    data = os.environ.get("INR_GON_DATA")
    bunny = Path(data) / "meshes" / "bunny.obj" if data else None
    if bunny is not None and bunny.is_file():
        mesh, label = load_mesh(bunny), "bunny.obj"
    else:
        mesh, label = trimesh.creation.icosphere(subdivisions=7), "icosphere(7)"
    mesh, _, _ = normalize_mesh(mesh)
    print(f"\n## SDF sampling on {label}: {len(mesh.faces):,} faces, watertight={mesh.is_watertight}\n")
    print(f"{'backend':<28} {'points':>9} {'seconds':>8} {'points/s':>10}")
    for sign in ("pseudonormal", "winding_number"):
        samples, seconds, _ = measure(
            lambda: sample_sdf(mesh, num_uniform=25_000, num_surface=125_000, sign_method=sign, seed=0)
        )
        n = len(samples.sdf)
        print(f"{'igl ' + sign + ' (sample_sdf)':<28} {n:>9,} {seconds:>8.2f} {n / seconds:>10,.0f}")
    pts = np.random.default_rng(0).uniform(-1, 1, (200, 3))
    saved = sys.modules.get("igl")
    sys.modules["igl"] = None  # force the trimesh fallback
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, seconds, _ = measure(lambda: signed_distance(mesh, pts))
    finally:
        if saved is None:
            del sys.modules["igl"]
        else:
            sys.modules["igl"] = saved
    print(f"{'trimesh fallback':<28} {len(pts):>9,} {seconds:>8.2f} {len(pts) / seconds:>10,.0f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--mlp-width", type=int, default=64)
    parser.add_argument("--skip-mlp", action="store_true")
    parser.add_argument("--skip-sampling", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: stable figures on a shared machine)",
    )
    parser.add_argument("--single", nargs=3, metavar=("CASE", "RES", "METHOD"), help=argparse.SUPPRESS)
    parser.add_argument("--mesh-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.single:
        case, res, method = args.single
        run_single(case, int(res), method, args.mlp_width, args.device, args.mesh_out)
        return
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}")
    bench_extraction(args.resolutions, None if args.skip_mlp else args.mlp_width, args.device)
    if not args.skip_sampling:
        bench_sampling()


if __name__ == "__main__":
    main()
