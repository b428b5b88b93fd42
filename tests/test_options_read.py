"""Every option a training task offers on its command line is read by that task.

``inr-gon train TASK --help`` lists one option per field of the task's config dataclass (the
fields declared with ``cli=True``, the default). An option that the task never reads misleads:
a user sets it and nothing changes. This test takes the options of every task in ``TASKS`` from
the real ``inr-gon train TASK`` parser and checks that the task reads each of them while it runs.

How reads are recorded: the task's config class is subclassed with a ``__getattribute__`` that
records the name of every field read. The subclass is still a dataclass, so ``dataclasses.replace``
copies (the resolved config, for one) are recorded too, and its instances are still instances
of the task's config class, so the task accepts them. Each run does what ``inr-gon train`` does
(``inr_gon.cli.cmd_train``): ``Trainer(cfg)``, ``prepare_run_dir``, ``fit``, ``write_outputs``.
The runs are tiny and on the CPU.

Reads by the config machinery do not count. These are reads made anywhere inside a method that
the base :class:`~inr_gon.training.config.Config` defines (``validate``, ``_checks``, ``resolved``,
``to_dict``, ``from_dict``, ..., and subclass overrides of them), and reads made inside the
``dataclasses`` module (``asdict``, ``replace``, the generated ``__repr__``/``__eq__``). That
machinery visits every field to check it, fill defaults, or write ``config.json`` and checkpoints,
so a field read only there is not used by the task. Helpers a config gives its task
(``siren_options()``, properties such as ``SdfConfig.source``) do count, because the task calls
them for their values.

Some options are read only on some code paths. For example, ``cache_dir`` is read only for a mesh
folder, ``data_dir`` only for MNIST, ``image_size``/``channels`` only for an image folder, and the
variational GON's SIREN options only with ``--decoder siren``. So each task has a short list of
runs in ``RUNS``, and an option counts as read if any of those runs reads it.

What this test cannot see: an option that is read but has no effect. Examples are an option passed
to a module that ignores it, or an option only copied into ``metrics.json``. Such an option counts
as read.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import sys
import warnings

import pytest
import torch

from inr_gon import cli
from inr_gon.training import trainer as trainer_module
from inr_gon.training.config import Config
from inr_gon.training.tasks import TASKS
from inr_gon.training.trainer import Trainer

from conftest import write_deepsdf_folder, write_image_folder

# -- the runs of each task ------------------------------------------------------------------------------------------
# "<images>": a folder of 12 tiny PNGs; "<meshes>": a folder of 4 small meshes; "<tmp>": the test's tmp_path.
# "mnist" is the embedded 4000/1000-image subset (offline).
LOOP = dict(
    steps=2,
    seconds=0.0,
    batch_size=4,
    eval_every=1,
    checkpoint_every=1,
    keep_checkpoints=1,
    log_every=1,
    device="cpu",
    threads=1,
    amp="off",
)
SIREN = dict(hidden=16, layers=2, latent=4)
FOLDER = dict(dataset="<images>", image_size=8, channels=1, eval_images=4)  # reads image_size, channels
MNIST = dict(dataset="mnist", eval_images=4)  # reads data_dir
SHAPES = dict(
    num_shapes=4, num_unseen=2, pool=64, points=32, batch_size=2, eval_shapes=2, mesh_resolution=8, slerp_frames=2
)  # procedural
MESHES = dict(meshes="<meshes>", cache_dir="<tmp>/cache", num_unseen=1)  # reads cache_dir
# a mesh tree with DeepSDF split files (reads split, test_split)
MESH_SPLIT = dict(
    meshes="<meshes>", cache_dir="<tmp>/cache", split="<split>", test_split="<test-split>", num_unseen=None
)

# a DeepSDF folder of 4 shapes, its pools streamed from the files and held in memory (reads stream)
DEEPSDF = dict(deepsdf="<deepsdf>", num_unseen=1)

# The first run of a task is its plain tiny run; the others take the branches that its options switch
# between, so that an option read only on one branch is not reported.
RUNS: dict[str, list[dict]] = {
    "image": [
        {**FOLDER, **SIREN, "outer_fraction": 0.25},
        {**MNIST, **SIREN, "outer_fraction": 0.25, "outer_sampling": "stratified"},
    ],
    "superres": [{**FOLDER, **SIREN}, {**MNIST, **SIREN}],
    "classifier": [{**FOLDER, **SIREN}, {**MNIST, **SIREN, "mode": "joint"}],
    "autoencoder": [{**FOLDER, **SIREN}, {**MNIST, **SIREN, "kind": "vae"}],
    "variational": [
        {**MNIST, "latent": 4, "base_channels": 4},  # the convolutional decoder (28² only)
        {**FOLDER, **SIREN, "decoder": "siren"},
    ],
    "sdf": [
        {**SHAPES, **SIREN},  # per-sample inner points, new shapes mixed in
        {**SHAPES, **SIREN, "inner": "shared"},
        {**SHAPES, **SIREN, "inner_sampling": "fixed"},
        {**SHAPES, **SIREN, "partial_inner": 0.5, "partial_region": "view"},
        {**SHAPES, **SIREN, **MESHES},
        {**SHAPES, **SIREN, **MESH_SPLIT},
        {**SHAPES, **SIREN, **DEEPSDF, "stream": "on"},
    ],
    "autodecoder": [
        {**SHAPES, **SIREN, "encode_iterations": 2},
        {**SHAPES, **SIREN, **MESHES, "encode_iterations": 2},
        {**SHAPES, **SIREN, **MESH_SPLIT, "encode_iterations": 2},
        {**SHAPES, **SIREN, **DEEPSDF, "stream": "on", "encode_iterations": 2},
    ],
}

# Options read outside the trainer and the task: {option: (where, a pattern that source has)}.
READ_ELSEWHERE = {
    "strict": (cli.cmd_train, r"\bcfg\.strict\b"),  # the exit status after the run
    "tf32": (trainer_module, r"\bcfg\.tf32\b"),  # read by the trainer on CUDA only; these runs use the CPU
    "preset": (Config.resolved, r"\bpreset\b"),  # names the defaults the other fields are filled from
}


# -- recording reads ------------------------------------------------------------------------------------------------
def machinery_codes(cfg_cls) -> set:
    """The code objects of the config machinery: the methods that the base ``Config`` defines, as
    ``cfg_cls`` and its bases define or override them, and ``__eq__``/``__repr__``."""
    names = {
        n
        for n, v in vars(Config).items()
        if inspect.isfunction(v) or isinstance(v, (classmethod, staticmethod, property))
    }
    codes = set()
    for klass in cfg_cls.__mro__:
        for name in names | {"__eq__", "__repr__"}:
            v = vars(klass).get(name)
            v = v.fget if isinstance(v, property) else getattr(v, "__func__", v)
            if hasattr(v, "__code__"):
                codes.add(v.__code__)
    return codes


def tracked(cfg_cls):
    """A dataclass subclass of ``cfg_cls``. Its instances record in the class's ``reads`` set every
    field that is read outside the config machinery."""
    fields = frozenset(f.name for f in dataclasses.fields(cfg_cls))
    dataclasses_file = dataclasses.__file__
    reads: set = set()

    def by_machinery(frame) -> bool:
        while frame is not None:
            if frame.f_code in machinery or frame.f_code.co_filename == dataclasses_file:
                return True
            frame = frame.f_back
        return False

    def __getattribute__(self, name):
        if name in fields and name not in reads and not by_machinery(sys._getframe(1)):
            reads.add(name)
        return object.__getattribute__(self, name)

    cls = dataclasses.dataclass(
        type(f"Tracked{cfg_cls.__name__}", (cfg_cls,), {"__getattribute__": __getattribute__, "__module__": __name__})
    )
    machinery = machinery_codes(cls)  # with the subclass's own generated __eq__ and __repr__
    cls.reads = reads
    return cls


def cli_options(task: str) -> set[str]:
    """The config fields that ``inr-gon train TASK`` offers as options, taken from the real parser."""

    def subcommand(parser, name):
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]

    parser = subcommand(subcommand(cli.build_parser(), "train"), task)
    fields = {f.name for f in dataclasses.fields(TASKS[task].config_class)}
    return {a.dest for a in parser._actions if a.dest in fields}


# -- running a task -------------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _offline_and_threads(monkeypatch):
    monkeypatch.setenv("INR_GON_OFFLINE", "1")  # MNIST: the embedded subset, never a download
    monkeypatch.delenv("INR_GON_DATA", raising=False)
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)  # threads=1 sets it for the whole process


def write_meshes(folder):
    import trimesh

    folder.mkdir()
    meshes = [
        trimesh.creation.icosphere(subdivisions=1, radius=0.7),
        trimesh.creation.box((1.0, 0.6, 0.8)),
        trimesh.creation.capsule(height=0.8, radius=0.3, count=(8, 8)),
        trimesh.creation.icosphere(subdivisions=1, radius=0.4),
    ]
    for k, m in enumerate(meshes):
        m.export(folder / f"m{k}.obj")
    return folder


def write_split(path, ids):
    """A DeepSDF split file naming meshes of the ``<meshes>`` folder (its class is the folder's name)."""
    path.write_text(json.dumps({"any": {"meshes": ids}}))
    return path


def fill(options: dict, tmp_path) -> dict:
    """``options`` with the placeholders replaced (the folders are written when first needed)."""
    makers = {
        "<images>": lambda p: write_image_folder(p, n=12, size=12),
        "<meshes>": write_meshes,
        "<split>": lambda p: write_split(p, ["m0", "m1", "m2"]),
        "<test-split>": lambda p: write_split(p, ["m3"]),
        "<deepsdf>": lambda p: write_deepsdf_folder(p, ["a", "b", "c", "d"]),
    }
    out = {}
    for k, v in options.items():
        if v in makers:
            folder = tmp_path / v.strip("<>")
            v = str(folder if folder.exists() else makers[v](folder))
        elif isinstance(v, str):
            v = v.replace("<tmp>", str(tmp_path))
        out[k] = v
    return out


def run(cfg_cls, options: dict, out) -> None:
    """A tiny run, as ``inr-gon train`` runs it."""
    options = {**LOOP, **options, "out": str(out)}
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(cfg_cls)})
    assert not unknown, f"RUNS sets {', '.join(unknown)}: not options of {cfg_cls.__mro__[1].__name__}"
    cfg = cfg_cls(**options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # runs of two steps collapse; MNIST falls back to its subset
        trainer = Trainer(cfg, quiet=True)
        trainer.prepare_run_dir(resume=False, overwrite=False)
        trainer.write_outputs(trainer.fit())


# -- the tests --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", list(TASKS))
def test_every_option_is_read_by_its_task(task, tmp_path):
    assert task in RUNS, f"no tiny runs for task {task!r}: add them to RUNS in {__file__}"
    cls = tracked(TASKS[task].config_class)
    for i, options in enumerate(RUNS[task]):
        run(cls, fill(options, tmp_path), tmp_path / f"run{i}")
    unread = sorted(cli_options(task) - cls.reads - set(READ_ELSEWHERE))
    assert not unread, f"inr-gon train {task} offers options that it never reads: {', '.join(unread)}"


def test_the_options_read_elsewhere_are_read_there():
    for name, (where, pattern) in READ_ELSEWHERE.items():
        assert re.search(pattern, inspect.getsource(where)), f"{name}: not read in {where.__name__} any more"


def test_reads_by_the_config_machinery_do_not_count():
    """The tracking itself: checks, defaults, dictionaries, copies and comparisons read every field
    and record none; a read from anywhere else, or through a config helper, is recorded."""
    cls = tracked(TASKS["image"].config_class)
    cfg = cls(dataset="mnist", device="cpu")
    cfg.validate()
    resolved = cfg.resolved(torch.device("cpu"))
    resolved.to_dict(), repr(resolved), resolved == cfg, dataclasses.replace(resolved, lr=1.0), dataclasses.asdict(cfg)
    type(cfg).from_dict(resolved.to_dict())
    assert type(resolved) is cls and cls.reads == set()
    resolved.seed
    siren = resolved.siren_options()  # {field name: value}
    assert cls.reads == {"seed", *siren}
