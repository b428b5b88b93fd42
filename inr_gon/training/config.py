"""One config system: typed dataclass fields with their help text, checks and command-line flags.

A run's configuration is one flat ``@dataclass`` per task, composed by inheritance from the
parts it shares (:class:`~inr_gon.training.trainer.TrainerConfig` for the loop,
:class:`SirenConfig` for the network) and the task's own fields. Each field is declared once,
with :func:`option`: its default, help text, check and (optionally) its flag. From that one
declaration come

* :meth:`Config.validate` (a one-line ``ValueError`` naming the field and its value),
* :meth:`Config.add_arguments` (argparse options, grouped; defaults shown in ``--help``),
* :meth:`Config.to_dict` / :meth:`Config.from_dict` (``config.json`` and checkpoints).

Defaults that depend on the device (the paper's network on CUDA, a smaller one on CPU) are
``None`` in the dataclass and filled by :meth:`Config.resolved` from the class's
``DEFAULTS`` / ``CPU_DEFAULTS`` / ``CUDA_DEFAULTS`` tables, so a task states its defaults in
one place and ``--help`` prints them per device.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

__all__ = ["Check", "option", "Config", "SirenConfig", "at_least", "positive", "nonneg", "fraction",
           "one_of", "load_config_file"]


@dataclass(frozen=True)
class Check:
    """A field check: ``ok(value)`` must hold; ``why`` completes "<field>=<value> ..."."""

    ok: Callable[[Any], bool]
    why: str

    def __call__(self, value) -> bool:
        try:
            return bool(self.ok(value))
        except TypeError:
            return False


def at_least(n) -> Check:
    return Check(lambda v: v >= n, f"must be >= {n}")


positive = Check(lambda v: v > 0 and math.isfinite(v), "must be > 0")
nonneg = Check(lambda v: v >= 0 and math.isfinite(v), "must be >= 0")
fraction = Check(lambda v: 0 < v <= 1, "must be in (0, 1]")


def one_of(*values) -> Check:
    return Check(lambda v: v in values, "must be " + " or ".join(repr(v) for v in values))


def option(default=None, help: str = "", *, check: Check | None = None, choices=None, flag: str | None = None,
           aliases: tuple = (), group: str = "training", metavar: str | None = None, negate: bool = False,
           cli: bool = True):
    """A config field.

    Args:
        default: the default (``None``: optional, or filled by the device tables).
        help: one sentence for ``--help``.
        check: a :class:`Check` of non-``None`` values (``choices`` adds one).
        flag: the command-line flag (default ``--field-name``); ``aliases``: more flags.
        group: the ``--help`` section (``data``, ``model``, ``training``, ``output``, ``speed``).
        negate: a boolean defaulting to ``True`` whose flag turns it off (e.g. ``--release-memory``).
        cli: ``False`` for fields set only from code or ``config.json``.
    """
    if choices is not None and check is None:
        check = one_of(*choices)
    meta = dict(help=help, check=check, choices=tuple(choices) if choices else None, flag=flag,
                aliases=tuple(aliases), group=group, metavar=metavar, negate=negate, cli=cli)
    return dataclasses.field(default=default, metadata=meta)


def _base_type(hint):
    """``int | None`` -> ``(int, True)``; ``float`` -> ``(float, False)``."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else str), True
    return hint, False


class Config:
    """Base of the run-configuration dataclasses (see the module docstring).

    Class attributes a task's config may set:
        TASK: the task's name (``inr-gon train TASK``).
        DEFAULTS, CPU_DEFAULTS, CUDA_DEFAULTS: values for ``None`` fields; a class's tables
            extend its bases' (device tables win over ``DEFAULTS``).
        LEGACY: ``{old key: new key}`` for dictionaries written by earlier versions.
        ABSENT: ``{field: value or callable(dict) -> value}``: what a field added later meant for a
            run whose saved ``config.json`` predates it (:meth:`fill_absent`).
    """

    TASK: ClassVar[str] = ""
    task_class: ClassVar[type | None] = None      # the task this config configures (set by the task's module)
    DEFAULTS: ClassVar[dict] = {}
    CPU_DEFAULTS: ClassVar[dict] = {}
    CUDA_DEFAULTS: ClassVar[dict] = {}
    LEGACY: ClassVar[dict] = {}
    ABSENT: ClassVar[dict] = {}

    # -- checks -------------------------------------------------------------------------------------
    def _checks(self) -> list:
        """Cross-field checks: ``(field, ok, why)`` triples (subclasses extend)."""
        return []

    def validate(self) -> None:
        """Raise a one-line ``ValueError`` ("<field>=<value> <why>") for the first impossible value."""
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            check = f.metadata.get("check")
            if v is not None and check is not None and not check(v):
                raise ValueError(f"{f.name}={v!r} {check.why}")
        for name, ok, why in self._checks():
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} {why}")

    # -- device defaults ------------------------------------------------------------------------------
    @classmethod
    def device_defaults(cls, device_type: str) -> dict:
        """The values ``None`` fields take on ``device_type`` (``"cpu"``, ``"cuda"``, ...)."""
        table: dict = {}
        for klass in reversed(cls.__mro__):         # the base classes' tables, then the task's
            table.update(vars(klass).get("DEFAULTS", {}))
        for klass in reversed(cls.__mro__):
            table.update(vars(klass).get("CUDA_DEFAULTS" if device_type == "cuda" else "CPU_DEFAULTS", {}))
        return table

    def resolved(self, device) -> "Config":
        """A validated copy with ``None`` fields filled from the device's defaults."""
        table = self.device_defaults(getattr(device, "type", str(device)))
        cfg = dataclasses.replace(self, **{k: v for k, v in table.items() if getattr(self, k) is None})
        cfg.validate()
        return cfg

    # -- dictionaries -----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, *, strict: bool = False):
        """Rebuild from :meth:`to_dict`'s output (or an earlier version's, via ``LEGACY``).

        Unknown keys are ignored (``strict=False``: a checkpoint from another version) or a
        one-line ``ValueError`` (``strict=True``: a config file a person wrote)."""
        d = {cls.LEGACY.get(k, k): v for k, v in d.items() if k != "task"}
        d = cls._upgrade(d)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if strict and unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)} for task {cls.TASK!r}")
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def fill_absent(cls, d: dict) -> dict:
        """A run's saved dictionary with the fields it predates set to what that version did (so
        ``--resume`` and ``--config config.json`` rebuild the same model, not today's defaults)."""
        table: dict = {}
        for klass in reversed(cls.__mro__):
            table.update(vars(klass).get("ABSENT", {}))
        keys = {cls.LEGACY.get(k, k) for k in d}
        return {**{k: (v(d) if callable(v) else v) for k, v in table.items() if k not in keys}, **d}

    @classmethod
    def _upgrade(cls, d: dict) -> dict:
        """Map an earlier version's dictionary onto this one (subclasses extend)."""
        return d

    # -- the command line -----------------------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One option per field (defaults suppressed, so :meth:`from_args` sees only what was given)."""
        hints = typing.get_type_hints(cls)
        groups: dict[str, argparse._ArgumentGroup] = {}
        order = ("data", "model", "training", "output", "speed")
        fields = sorted((f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)),
                        key=lambda f: order.index(f.metadata.get("group", "training"))
                        if f.metadata.get("group", "training") in order else len(order))
        for f in fields:
            m = f.metadata
            g = m.get("group", "training")
            if g not in groups:
                groups[g] = parser.add_argument_group(g)
            flags = [m.get("flag") or "--" + f.name.replace("_", "-"), *m.get("aliases", ())]
            kind, optional = _base_type(hints[f.name])
            text = m.get("help", "") + cls._default_text(f)
            if kind is bool:
                # a device-dependent switch (default None) can be set either way: --x / --no-x
                action = ("store_false" if m.get("negate") else
                          argparse.BooleanOptionalAction if optional else "store_true")
                groups[g].add_argument(*flags, dest=f.name, action=action, default=argparse.SUPPRESS, help=text)
                continue
            groups[g].add_argument(*flags, dest=f.name, type=_parser(kind, m.get("check"), optional),
                                   choices=m.get("choices"), default=argparse.SUPPRESS, help=text,
                                   metavar=m.get("metavar"))

    @classmethod
    def _default_text(cls, f) -> str:
        if f.metadata.get("negate"):
            return ""
        cpu, cuda = cls.device_defaults("cpu").get(f.name), cls.device_defaults("cuda").get(f.name)
        if f.default is not None:
            d = f.default
        elif cpu is not None and cpu != cuda:
            return f" (default: {_fmt(cpu)} on CPU, {_fmt(cuda)} on CUDA)"
        else:
            d = cpu
        if d is None or d is False or d == "":
            return ""
        return f" (default: {_fmt(d)})"

    @classmethod
    def from_args(cls, args: argparse.Namespace, *, base: dict | None = None):
        """The config from parsed options, over ``base`` (e.g. a ``--config`` file's values)."""
        names = {f.name for f in dataclasses.fields(cls)}
        given = {k: v for k, v in vars(args).items() if k in names}
        return cls.from_dict({**(base or {}), **given}, strict=True)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _parser(kind, check: Check | None, optional: bool):
    """An argparse ``type``: parse, then apply the field's check (a usage error if it fails)."""
    def parse(s: str):
        if optional and s.lower() in ("none", ""):
            return None
        if kind in (int, float):
            try:
                v = kind(s)
            except ValueError:
                raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
        else:
            v = s
        if check is not None and not check(v):
            raise argparse.ArgumentTypeError(f"{check.why}, got {s}")
        return v
    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


def load_config_file(path) -> dict:
    """The dictionary of a ``config.json`` (one-line ``ValueError`` for a missing or bad file)."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable JSON config ({str(e).splitlines()[0]})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path}: a config file holds one JSON object")
    return d


@dataclass
class SirenConfig(Config):
    """The latent-conditioned SIREN every task's network is (``None``: the task's device default)."""

    hidden: int | None = option(None, "SIREN width", check=at_least(1), group="model")
    layers: int | None = option(None, "number of sine layers", check=at_least(1), group="model")
    latent: int | None = option(None, "latent size", check=at_least(1), group="model")
    w0: float = option(30.0, "SIREN frequency of the hidden layers", check=positive, group="model")
    w0_first: float | None = option(None, "SIREN frequency of the first layer (its coordinate columns; the image task on "
                                          "CPU: 90 for MNIST and Fashion-MNIST; the SDF task: 60)", check=positive,
                                    group="model")
    w0_latent: float | None = option(None, "SIREN frequency of the first layer's latent columns (none: as "
                                           "--w0-first)", check=positive, group="model")
    latent_steps: int = option(1, "gradient steps of the latent (1: the paper's single step; more are "
                                  "differentiated through)", check=at_least(1), group="model")
    step_size: float = option(1.0, "step size of latent steps 2..K relative to the first", check=positive,
                              group="model")
    learn_step_size: bool = option(False, "learn a per-step, per-dimension latent step size with the network",
                                   group="model")
    latent_shifts: bool | None = option(None, "the latent also shifts every hidden layer (a linear map per layer, "
                                        "functa's shift modulations); the paper's model conditions the first "
                                        "layer only", group="model")
    gauss_newton: float | None = option(None, "damping of Gauss-Newton latent steps, z = -(damping I + H)^-1 grad "
                                              "(H: the inner loss's Gauss-Newton curvature in z; 0: the paper's plain "
                                              "gradient step; the SDF task: 1; the image task on CPU: 0.01)", check=nonneg, group="model")

    DEFAULTS = dict(latent=32, w0_first=30.0, latent_shifts=False, gauss_newton=0.0)
    # runs saved before 0.3 had neither option: no shifts, the latent at the first layer's frequency; runs saved
    # before the Gauss-Newton step took plain gradient steps
    ABSENT = dict(latent_shifts=False, w0_latent=lambda d: d.get("w0_first", 30.0), gauss_newton=0.0)

    def siren_options(self) -> dict:
        """The :class:`~inr_gon.nn.siren.LatentSiren` keyword arguments of these fields."""
        return dict(w0=self.w0, w0_first=self.w0_first, w0_latent=self.w0_latent, latent_steps=self.latent_steps,
                    step_size=self.step_size, learn_step_size=self.learn_step_size, latent_shifts=self.latent_shifts,
                    gauss_newton=self.gauss_newton or None)
