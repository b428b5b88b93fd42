"""Data-parallel training (torch.distributed, gloo on CPU), the GON objective module, mixed
precision and the deferred (sync-free) non-finite check. CUDA-only checks skip without a GPU."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from inr_gon.core.coords import grid, image_to_points
from inr_gon.training.distributed import DistContext, init_distributed
from inr_gon.training.objectives import GONObjective
from inr_gon.core.gon import gon_latent, gon_loss
from inr_gon.core.integrators import GridIntegrator, MonteCarloIntegrator
from inr_gon.nn.siren import LatentSiren
from inr_gon.training import ImageConfig, NonFiniteLossError, SdfConfig, Trainer

from conftest import load_benchmark, poison, tiny_dataset

ROOT = Path(__file__).resolve().parents[1]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
SINGLE = DistContext()  # force one process even if the environment names a torchrun job


def blobs_dataset(n_train=24, n_test=10, size=10, seed=0):
    return tiny_dataset(n_train, n_test, size, seed)


def config(out=None, **kw):
    base = dict(
        steps=4,
        batch_size=8,
        hidden=16,
        layers=2,
        latent=4,
        eval_every=2,
        checkpoint_every=2,
        eval_images=10,
        out=str(out) if out else None,
        device="cpu",
        lr=1e-3,
        lr_schedule="constant",
        outer_fraction=0.5,
        log_every=2,
        amp="off",
        w0_first=30.0,
    )  # float32: equal to one process
    base.update(kw)
    return ImageConfig(**base)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_ranks(worker, *args):
    """Run ``worker(rank, 2, port, *args)`` in two fresh processes. Spawned, not forked: a child
    forked from a process whose OpenMP thread pool has run can deadlock in its first parallel
    region (seen once in the full suite: one rank hung, the other waited in a collective).

    A rank killed by a signal (a SIGABRT, "terminate called without an active exception", from a
    C++ thread of the process group; seen once in the full suite on two busy cores) is retried
    once, on a fresh port; a failing check (a Python exception, exit code 1) is not."""
    for attempt in range(2):
        try:
            mp.start_processes(worker, args=(2, free_port(), *args), nprocs=2, join=True, start_method="spawn")
            return
        except mp.ProcessExitedException as e:
            if attempt or not e.signal_name:
                raise


def _test_group() -> DistContext:
    """The rank's process group (from the environment, as under torchrun), with a short
    collective timeout so that a rank waiting for a lost peer fails the test instead of hanging."""
    return init_distributed(device=torch.device("cpu"), timeout_s=120)


def _worker(rank, world, port, tmp):
    """One rank of a 2-process gloo job, launched as torchrun would (environment variables)."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    tmp = Path(tmp)
    t = Trainer(config(tmp / "run"), dataset=blobs_dataset(), quiet=True, dist=_test_group())
    try:
        assert t.dist.enabled and t.dist.world_size == world
        # latents of this rank's shard of a fixed global batch, through the DDP forward
        b = 8 // world
        x = image_to_points(t.task.train_images[rank * b : (rank + 1) * b])
        loss, z, _ = t.step_module(t.task.coords, x, generator=torch.Generator().manual_seed(5))
        loss.backward()
        t.opt.zero_grad(set_to_none=True)
        t.prepare_run_dir(resume=False, overwrite=False)
        metrics = t.fit()
        torch.save(
            {
                "z": z.detach(),
                "params": [p.detach() for p in t.model.parameters()],
                "metrics": metrics,
                "batch": t.next_batch()[1],
            },
            tmp / f"rank{rank}.pt",
        )
    finally:
        t.dist.close()


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    run_two_ranks(_worker, str(tmp))
    return tmp, [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(2)]


def test_two_processes_equal_one_process_with_the_global_batch(two_process_run, tmp_path):
    tmp, ranks = two_process_run
    single = Trainer(config(tmp_path / "single"), dataset=blobs_dataset(), quiet=True, dist=SINGLE)
    single.prepare_run_dir(resume=False, overwrite=False)
    metrics = single.fit()
    for r in ranks:  # identical on both ranks and equal to one process
        for a, b in zip(r["params"], single.model.parameters()):
            torch.testing.assert_close(a, b.detach(), atol=1e-5, rtol=1e-5)
        assert r["metrics"]["steps"] == 4 and r["metrics"]["processes"] == 2
        # evaluation: shards of the test set reduced over the ranks = the whole set in one process
        assert abs(r["metrics"]["test_psnr"] - metrics["test_psnr"]) < 1e-4
        assert abs(r["metrics"]["test_ssim"] - metrics["test_ssim"]) < 1e-5
    for a, b in zip(ranks[0]["params"], ranks[1]["params"]):
        assert torch.equal(a, b)
    # each rank saw a distinct half of the same global batch
    assert not torch.equal(ranks[0]["batch"], ranks[1]["batch"])
    # only rank 0 wrote, and the rotation kept the newest checkpoints of the shared folder
    names = sorted(p.name for p in (tmp / "run").iterdir())
    assert names == ["ckpt_step0000002.pt", "ckpt_step0000004.pt", "config.json", "metrics.jsonl"]


def test_sharding_does_not_change_any_latent(two_process_run):
    _, ranks = two_process_run
    torch.manual_seed(0)
    model = LatentSiren(2, 4, 1, 16, 2, latent_shifts=True, gauss_newton=0.03)  # the trainers' initial model (seed 0)
    x = image_to_points(blobs_dataset().train_images[:8])
    z_full = gon_latent(model, grid((10, 10)), x, integrator=GridIntegrator(scale=1 / 64))
    torch.testing.assert_close(torch.cat([r["z"] for r in ranks]), z_full, atol=1e-6, rtol=1e-5)


def test_two_process_checkpoint_resumes_in_one_process(two_process_run, tmp_path):
    tmp, _ = two_process_run
    run = tmp_path / "run"
    run.mkdir()
    for p in (tmp / "run").iterdir():
        (run / p.name).write_bytes(p.read_bytes())
    resumed = Trainer(config(run, steps=6), dataset=blobs_dataset(), quiet=True, dist=SINGLE)
    resumed.prepare_run_dir(resume=True, overwrite=False)
    assert resumed.step == 4
    resumed.fit()
    ref = Trainer(config(tmp_path / "ref", steps=6), dataset=blobs_dataset(), quiet=True, dist=SINGLE)
    ref.prepare_run_dir(resume=False, overwrite=False)
    ref.fit()
    for a, b in zip(resumed.model.parameters(), ref.model.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def _time_schedule_worker(rank, world, port, tmp):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    cfg = config(
        steps=60,
        lr=1e-2,
        lr_schedule="cosine",
        schedule_by="time",
        seconds=2.0,
        eval_every=10**6,
        checkpoint_every=10**6,
        log_every=5,
    )
    t = Trainer(cfg, dataset=blobs_dataset(), quiet=True, dist=_test_group())
    try:
        lrs = []
        for _ in range(60):
            if t.step == 0:
                t._t0 = time.perf_counter() - 0.1 * rank  # the ranks' clocks disagree by 0.1 s
            t.advance()
            lrs.append(t.opt.param_groups[0]["lr"])
        torch.save({"params": [p.detach() for p in t.model.parameters()], "lrs": lrs}, Path(tmp) / f"t{rank}.pt")
    finally:
        t.dist.close()


def test_time_following_schedule_is_the_same_on_every_rank(tmp_path):
    """With --schedule-by time each rank would read its own clock; the trainer shares one (the
    ranks' mean, every log_every steps), so every rank steps with the same learning rate."""
    run_two_ranks(_time_schedule_worker, str(tmp_path))
    r0, r1 = (torch.load(tmp_path / f"t{r}.pt", weights_only=False) for r in range(2))
    assert r0["lrs"] == r1["lrs"]
    assert len(set(r0["lrs"])) > 5  # the schedule moved with the (shared) clock
    assert all(torch.equal(a, b) for a, b in zip(r0["params"], r1["params"]))


def test_global_batch_must_divide_evenly(tmp_path):
    with pytest.raises(ValueError, match="divisible by the number of processes"):
        Trainer(config(batch_size=7), dataset=blobs_dataset(), quiet=True, dist=DistContext(rank=0, world_size=2))


def test_objective_module_equals_gon_loss():
    torch.manual_seed(1)
    model = LatentSiren(2, 4, 1, 16, 2)
    c, x = grid((8, 8)), torch.rand(5, 64, 1)
    inner, outer = GridIntegrator(scale=1 / 64), MonteCarloIntegrator(fraction=0.5)
    ref, z_ref = gon_loss(
        model, c, x, inner_integrator=inner, outer_integrator=outer, generator=torch.Generator().manual_seed(3)
    )
    g_ref = torch.autograd.grad(ref, list(model.parameters()))
    loss, z, _ = GONObjective(model, inner=inner, outer=outer)(c, x, generator=torch.Generator().manual_seed(3))
    g = torch.autograd.grad(loss, list(model.parameters()))
    assert torch.equal(loss, ref) and torch.equal(z, z_ref)
    for a, b in zip(g, g_ref):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_torch_compile_of_the_gon_step_matches_eager():
    torch.manual_seed(0)
    m = LatentSiren(2, 8, 1, 32, 3)
    obj = GONObjective(m)
    c, x = grid((8, 8)), torch.rand(4, 64, 1)
    loss, _, _ = obj(c, x)
    want = torch.autograd.grad(loss, list(m.parameters()))
    loss_c, _, _ = torch.compile(obj)(c, x)  # the fused trunk steps aside here
    got = torch.autograd.grad(loss_c, list(m.parameters()))
    torch.testing.assert_close(loss_c, loss, rtol=1e-5, atol=1e-6)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * b.abs().max().item())


def _amp_check(device, amp, loss_rtol):
    torch.manual_seed(0)
    model = LatentSiren(2, 32, 1, 64, 3).to(device)
    c, x = grid((28, 28), device=device), torch.rand(16, 784, 1, device=device)
    inner = GridIntegrator(scale=1 / 64)
    l32, z32, _ = GONObjective(model, inner=inner)(c, x)
    lam, zam, _ = GONObjective(model, inner=inner, amp=amp)(c, x)
    assert zam.dtype == torch.float32 and lam.dtype == torch.float32
    torch.testing.assert_close(zam, z32, atol=0, rtol=0)  # the latent is computed in float32
    assert abs(lam.item() - l32.item()) <= loss_rtol * abs(l32.item())
    g32 = torch.autograd.grad(l32, list(model.parameters()))
    gam = torch.autograd.grad(lam, list(model.parameters()))
    for a, b in zip(gam, g32):
        assert torch.isfinite(a).all()
        assert float((a - b).norm()) <= 0.1 * float(b.norm()) + 1e-6


def test_bf16_outer_pass_keeps_the_float32_latent_on_cpu():
    _amp_check(torch.device("cpu"), "bf16", 0.05)


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("amp,rtol", [("bf16", 0.02), ("fp16", 0.005)])
def test_amp_outer_pass_on_cuda(amp, rtol):
    _amp_check(torch.device("cuda"), amp, rtol)


@cuda
@pytest.mark.cuda
def test_cuda_trainer_amp_deferred_and_resume_on_cpu(tmp_path):
    t = Trainer(config(tmp_path / "run", device="cuda", amp="bf16"), dataset=blobs_dataset(), quiet=True, dist=SINGLE)
    assert t.deferred
    t.prepare_run_dir(resume=False, overwrite=False)
    m = t.fit()
    assert m["steps"] == 4 and m["skipped_steps"] == 0
    r = Trainer(config(tmp_path / "run", steps=6, amp="bf16"), dataset=blobs_dataset(), quiet=True, dist=SINGLE)
    r.prepare_run_dir(resume=True, overwrite=False)
    assert r.step == 4
    r.fit()
    assert all(torch.isfinite(p).all() for p in r.model.parameters())


def test_deferred_check_stops_without_applying_the_bad_update(tmp_path):
    ref = Trainer(
        config(steps=2, nonfinite_check="deferred", eval_every=100, log_every=100),
        dataset=blobs_dataset(),
        quiet=True,
        dist=SINGLE,
    )
    ref.fit()
    t = Trainer(
        config(steps=6, nonfinite_check="deferred", eval_every=100, log_every=100),
        dataset=blobs_dataset(),
        quiet=True,
        dist=SINGLE,
    )
    poison(t, 3)
    with pytest.raises(NonFiniteLossError, match="at step 3 "):
        t.fit()
    assert t.step == 6  # it noticed later (no host sync per step) ...
    for a, b in zip(t.model.parameters(), ref.model.parameters()):
        assert torch.equal(a, b)  # ... but applied nothing from step 3 on


def test_deferred_check_skips_and_counts(tmp_path):
    t = Trainer(
        config(steps=5, nonfinite_check="deferred", on_nonfinite="skip"),
        dataset=blobs_dataset(),
        quiet=True,
        dist=SINGLE,
    )
    poison(t, 2)
    m = t.fit()
    assert m["skipped_steps"] == 1 and m["steps"] == 5
    assert all(torch.isfinite(p).all() for p in t.model.parameters())


def test_immediate_check_still_names_the_step():
    t = Trainer(config(steps=6), dataset=blobs_dataset(), quiet=True, dist=SINGLE)
    assert not t.deferred  # the CPU default
    poison(t, 3)
    with pytest.raises(NonFiniteLossError, match="at step 3"):
        t.fit()
    assert t.step == 2


def test_deferred_and_immediate_train_alike():
    a = Trainer(config(steps=4), dataset=blobs_dataset(), quiet=True, dist=SINGLE)
    b = Trainer(config(steps=4, nonfinite_check="deferred"), dataset=blobs_dataset(), quiet=True, dist=SINGLE)
    a.fit()
    b.fit()
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-5)


# -- SDF GONs data-parallel ------------------------------------------------------------------------
SDF_MODES = {"per_sample_eikonal": dict(inner="per_sample", eikonal=0.1), "shared": dict(inner="shared")}


def sdf_config(out=None, **kw):
    base = dict(
        num_shapes=8,
        num_unseen=3,
        pool=256,
        points=64,
        steps=4,
        batch_size=4,
        hidden=16,
        layers=2,
        latent=4,
        mesh_resolution=16,
        eval_shapes=3,
        slerp_frames=2,
        checkpoint_every=2,
        log_every=2,
        lr=1e-3,
        device="cpu",
        out=str(out) if out else None,
        lr_schedule="constant",
        schedule_by="steps",
        amp="off",
    )  # float32: equal to one process (auto is bf16 on a CPU with fast bf16)
    base.update(kw)
    return SdfConfig(**base)


def _sdf_worker(rank, world, port, tmp, mode):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    tmp = Path(tmp)
    t = Trainer(sdf_config(tmp / "run", **SDF_MODES[mode]), quiet=True, dist=_test_group())
    try:
        assert t.dist.enabled and t.dist.world_size == world
        t.prepare_run_dir(resume=False, overwrite=False)
        info = t.fit()
        ev = t.task.evaluate_shapes(t.task.shapes.unseen_index, num_samples=2000)  # split over the ranks
        _, _, op, _ = t.next_batch()
        torch.save(
            {
                "params": [p.detach() for p in t.model.parameters()],
                "info": info,
                "eval": ev,
                "outer_points": op,
                "checkpoint": str(t.last_checkpoint),
            },
            tmp / f"rank{rank}.pt",
        )
    finally:
        t.dist.close()


@pytest.fixture(scope="module", params=sorted(SDF_MODES))
def two_process_sdf_run(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sdf_ddp")
    run_two_ranks(_sdf_worker, str(tmp), request.param)
    return request.param, tmp, [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(2)]


def test_sdf_two_processes_equal_one_process_with_the_global_batch(two_process_sdf_run, tmp_path):
    mode, tmp, ranks = two_process_sdf_run
    single = Trainer(sdf_config(tmp_path / "single", **SDF_MODES[mode]), quiet=True, dist=SINGLE)
    single.prepare_run_dir(resume=False, overwrite=False)
    info = single.fit()
    ev = single.task.evaluate_shapes(single.task.shapes.unseen_index, num_samples=2000)
    _, _, op, _ = single.next_batch()
    for r in ranks:  # identical on both ranks and equal to one process
        for a, b in zip(r["params"], single.model.parameters()):
            torch.testing.assert_close(a, b.detach(), atol=1e-5, rtol=1e-5)
        assert r["info"]["steps"] == 4
        # the split evaluation, gathered, is the whole evaluation of one process
        assert r["eval"]["per_shape"]["names"] == ev["per_shape"]["names"]
        for k in ("chamfer", "iou", "normal_consistency", "grid_iou"):
            assert r["eval"][k] == pytest.approx(ev[k], rel=1e-3, abs=1e-6)
        # the linear baseline: rank 0's on every rank, the same as one process's
        for k in ("pca_train_iou", "pca_unseen_iou", "pca_num_train", "pca_components"):
            assert r["info"][k] == info[k] and info[k] is not None, k
    for a, b in zip(ranks[0]["params"], ranks[1]["params"]):
        assert torch.equal(a, b)
    # each rank took its own half of the same global batch, with the points one process draws
    torch.testing.assert_close(torch.cat([r["outer_points"] for r in ranks]), op, rtol=0, atol=0)
    names = sorted(p.name for p in (tmp / "run").iterdir())
    assert names == ["ckpt_step0000002.pt", "ckpt_step0000004.pt", "config.json", "metrics.jsonl"]


def test_sdf_two_process_checkpoint_resumes_in_one_process(two_process_sdf_run, tmp_path):
    mode, tmp, _ = two_process_sdf_run
    run = tmp_path / "run"
    run.mkdir()
    for p in (tmp / "run").iterdir():
        (run / p.name).write_bytes(p.read_bytes())
    resumed = Trainer(sdf_config(run, steps=6, **SDF_MODES[mode]), quiet=True, dist=SINGLE)
    resumed.prepare_run_dir(resume=True, overwrite=False)
    assert resumed.step == 4
    resumed.fit()
    ref = Trainer(sdf_config(tmp_path / "ref", steps=6, **SDF_MODES[mode]), quiet=True, dist=SINGLE)
    ref.prepare_run_dir(resume=False, overwrite=False)
    ref.fit()
    for a, b in zip(resumed.model.parameters(), ref.model.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_sdf_global_batch_must_divide_evenly():
    with pytest.raises(ValueError, match="divisible"):
        Trainer(sdf_config(batch_size=3), quiet=True, dist=DistContext(rank=0, world_size=2))


@pytest.mark.slow
def test_torchrun_runs_the_sdf_example_data_parallel(tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        str(ROOT / "examples/fit_sdf_shapes.py"),
        "--num-shapes",
        "6",
        "--num-unseen",
        "2",
        "--pool",
        "256",
        "--points",
        "64",
        "--steps",
        "4",
        "--batch-size",
        "4",
        "--hidden",
        "16",
        "--layers",
        "2",
        "--latent",
        "4",
        "--mesh-resolution",
        "16",
        "--eval-shapes",
        "2",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--quiet",
    ]
    # faulthandler: a rank that aborts prints where it was
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "PYTHONFAULTHANDLER": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("data parallel: 2 processes, 2 shapes each per step") == 1  # rank 0 only
    assert r.stdout.count("unseen shapes (one Gauss-Newton step)") == 1
    m = json.loads((out / "metrics.json").read_text())
    assert m["processes"] == 2 and m["steps"] == 4
    assert len(list((out / "meshes").glob("unseen_*.ply"))) >= 1 and (out / "ckpt_step0000004.pt").is_file()


@pytest.mark.slow
def test_torchrun_runs_the_example_data_parallel(tmp_path):
    import numpy as np
    import imageio.v3 as iio

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, img in enumerate(blobs_dataset(n_train=8, n_test=0).train_images):
        iio.imwrite(folder / f"img{i}.png", (img[0].numpy() * 255).astype(np.uint8))
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        str(ROOT / "examples/fit_mnist_siren.py"),
        "--dataset",
        str(folder),
        "--steps",
        "4",
        "--batch-size",
        "4",
        "--hidden",
        "16",
        "--layers",
        "2",
        "--latent",
        "4",
        "--eval-every",
        "2",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--quiet",
    ]
    # faulthandler: a rank that aborts prints where it was
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "PYTHONFAULTHANDLER": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("data parallel: 2 processes, 2 images each per step") == 1  # rank 0 only
    m = json.loads((out / "metrics.json").read_text())
    assert m["processes"] == 2 and m["steps"] == 4
    assert (out / "recon_test.png").is_file() and (out / "ckpt_step0000004.pt").is_file()


def test_gpu_benchmark_runs_quick_on_cpu(tmp_path, capsys):
    bench = load_benchmark("gpu")
    threads = torch.get_num_threads()
    try:
        assert (
            bench.main(["--quick", "--device", "cpu", "--scale-limits", "0.2", "--json", str(tmp_path / "b.json")]) == 0
        )
    finally:
        torch.set_num_threads(threads)
    res = json.loads((tmp_path / "b.json").read_text())
    assert set(res) == {"info", "step", "large_batch", "time_to_psnr", "render_mesh"}
    assert res["step"][0]["steps_per_s"] > 0 and res["step"][0]["points_per_s"] > 0
    assert res["render_mesh"][0]["megapixels_per_s"] > 0 and res["render_mesh"][1]["faces"] > 0
    assert len(res["time_to_psnr"][-1]["curve"]) >= 1
    assert "time_to_psnr" in capsys.readouterr().out
