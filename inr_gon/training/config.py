"""One config system: typed dataclass fields with their help text, checks and command-line flags.

A run's configuration is composed of parts, each of one concern, and a task's config declares
the parts it takes by deriving from them (``PARTS`` lists them):

* :class:`~inr_gon.training.parts.TrainerConfig`: the loop (steps, learning rate, checkpoints);
* a data part (images, shapes);
* :class:`~inr_gon.training.parts.LatentConfig`: the latent's size;
* a decoder: :class:`~inr_gon.training.parts.SirenConfig` (or a task's own, e.g. a convolutional decoder);
* an encoder: :class:`~inr_gon.training.parts.GradientOriginConfig` (the latent is a gradient at the origin) or per-item
  codes fitted by Adam (the auto-decoder's part);
* the task's objective, evaluation and output fields.

An option exists for a task only if the task takes the part that reads it, and
:meth:`Config.inactive` names the options the run's other choices ignore (given one, the run fails with
one line naming it).
Each field is declared once, with :func:`option`: its default, help text, check and
(optionally) its flag. From that one declaration come

* :meth:`Config.validate` (a one-line ``ValueError`` naming the field and its value),
* :meth:`Config.add_arguments` (argparse options, grouped; defaults shown in ``--help``),
* :meth:`Config.to_dict` / :meth:`Config.from_dict` (``config.json`` and checkpoints; flat, one
  key per field).

Defaults that depend on the run's scale (a few minutes on a CPU, the paper's network, a GPU)
are ``None`` in the dataclass and filled by :meth:`Config.resolved` from a named
:class:`Preset` (``--preset``; by default the device's), over the parts' ``DEFAULTS``.
``config.json`` records the preset and every resolved value.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

__all__ = [
    "Check",
    "option",
    "Config",
    "Preset",
    "at_least",
    "positive",
    "nonneg",
    "fraction",
    "one_of",
    "load_config_file",
]


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


def option(
    default=None,
    help: str = "",
    *,
    check: Check | None = None,
    choices=None,
    flag: str | None = None,
    aliases: tuple = (),
    group: str = "training",
    metavar: str | None = None,
    negate: bool = False,
    cli: bool = True,
):
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
    meta = dict(
        help=help,
        check=check,
        choices=tuple(choices) if choices else None,
        flag=flag,
        aliases=tuple(aliases),
        group=group,
        metavar=metavar,
        negate=negate,
        cli=cli,
    )
    return dataclasses.field(default=default, metadata=meta)


def _base_type(hint):
    """``int | None`` -> ``(int, True)``; ``float`` -> ``(float, False)``."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else str), True
    return hint, False


@dataclass(frozen=True)
class Preset:
    """A named table of defaults (``inr-gon train TASK --preset NAME``) and the one line that
    says what it is for (listed in ``--help``)."""

    about: str
    values: dict


class Config:
    """Base of the run configurations and of the parts they are composed of (see the module docstring).

    Class attributes a part or task config may set:
        TASK: the task's name (``inr-gon train TASK``).
        DEFAULTS: values for ``None`` fields; a class's table extends its bases'.
        PRESETS: ``{name: Preset}``, named tables over ``DEFAULTS`` (a task's extend its bases'
            tables of the same name); DEVICE_PRESETS: the preset a run on each device type takes
            when none is given (``"cpu"``, ``"cuda"``).
        ABSENT: ``{field: value or callable(dict) -> value}``: what a field meant for a run whose
            saved ``config.json`` lacks it (:meth:`fill_absent`).
    Renamed fields of earlier versions are mapped in :mod:`inr_gon.training.compat`.
    """

    TASK: ClassVar[str] = ""
    task_class: ClassVar[type | None] = None  # the task this config configures (set by the task's module)
    DEFAULTS: ClassVar[dict] = {}
    PRESETS: ClassVar[dict] = {}
    DEVICE_PRESETS: ClassVar[dict] = {}
    ABSENT: ClassVar[dict] = {}

    # -- checks -------------------------------------------------------------------------------------
    def _checks(self) -> list:
        """Cross-field checks: ``(field, ok, why)`` triples (subclasses extend)."""
        return []

    def inactive(self) -> dict:
        """``{field: why}``: the fields this run's other choices never read (e.g. the SIREN's
        options with a convolutional decoder). They are not filled by :meth:`resolved` and a
        value given for one is refused by :meth:`validate`. Subclasses extend."""
        return {}

    def validate(self) -> None:
        """Raise a one-line ``ValueError`` ("<field>=<value> <why>") for the first impossible value
        or ignored option."""
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            check = f.metadata.get("check")
            if v is not None and check is not None and not check(v):
                raise ValueError(f"{f.name}={v!r} {check.why}")
        presets = self.presets()
        if getattr(self, "preset", None) is not None and self.preset not in presets:
            raise ValueError(
                f"preset={self.preset!r} is not a preset of task {self.TASK!r} ({', '.join(presets) or 'it has none'})"
            )
        for name, ok, why in self._checks():
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} {why}")
        for name, why in self.inactive().items():
            if getattr(self, name) is not None:
                raise ValueError(f"{name}={getattr(self, name)!r} {why}")

    # -- defaults and presets -------------------------------------------------------------------------
    @classmethod
    def _merged(cls, attr: str) -> dict:
        table: dict = {}
        for klass in reversed(cls.__mro__):  # the bases' tables, then the class's own
            table.update(vars(klass).get(attr, {}))
        return table

    @classmethod
    def presets(cls) -> dict:
        """``{name: Preset}`` of this config (the values merged over its bases' presets of that name)."""
        out: dict = {}
        for klass in reversed(cls.__mro__):
            for name, p in vars(klass).get("PRESETS", {}).items():
                prev = out.get(name)
                out[name] = Preset(p.about, {**(prev.values if prev else {}), **p.values})
        return out

    @classmethod
    def default_preset(cls, device_type: str) -> str | None:
        """The preset a run on ``device_type`` takes when none is given (``None``: no presets)."""
        table = cls._merged("DEVICE_PRESETS")
        return table.get("cuda" if device_type == "cuda" else "cpu")

    @classmethod
    def preset_defaults(cls, preset: str | None) -> dict:
        """The values ``None`` fields take under ``preset`` (``DEFAULTS``, then the preset's table)."""
        table = cls._merged("DEFAULTS")
        if preset is not None:
            table.update(cls.presets()[preset].values)
        return table

    def resolved(self, device) -> "Config":
        """A validated copy with the preset named (the device's when none was given) and ``None``
        fields filled from it; the fields its choices leave :meth:`inactive` stay ``None``."""
        preset = getattr(self, "preset", None)
        if preset is None:
            preset = self.default_preset(getattr(device, "type", str(device)))
        if preset is not None and preset not in self.presets():
            self.validate()  # names the unknown preset
        table = self.preset_defaults(preset)
        if hasattr(self, "preset"):
            table["preset"] = preset
        filled = dataclasses.replace(self, **{k: v for k, v in table.items() if getattr(self, k, v) is None})
        # inactive given the filled choices (e.g. a preset's outer fraction): unset unless given
        cfg = dataclasses.replace(filled, **{k: None for k in filled.inactive() if getattr(self, k) is None})
        cfg.validate()
        return cfg

    # -- dictionaries -----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, *, strict: bool = False, saved: bool = True):
        """Rebuild from :meth:`to_dict`'s output (or an earlier version's, via :mod:`.compat`).

        Unknown keys are ignored (``strict=False``: a checkpoint from another version) or a
        one-line ``ValueError`` (``strict=True``: a config file a person wrote). ``saved=False``:
        ``d`` holds options given now (today's names, nothing mapped or dropped)."""
        from .compat import upgrade

        d = {k: v for k, v in d.items() if k != "task"}
        if saved:
            d = upgrade(cls.TASK, d)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if strict and unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)} for task {cls.TASK!r}")
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def fill_absent(cls, d: dict) -> dict:
        """A run's saved dictionary with the fields it predates set to what that version did (so
        ``--resume`` and ``--config config.json`` rebuild the same model, not today's defaults)."""
        from .compat import upgrade

        table = cls._merged("ABSENT")
        keys = set(upgrade(cls.TASK, dict(d)))
        return {**{k: (v(d) if callable(v) else v) for k, v in table.items() if k not in keys}, **d}

    # -- the command line -----------------------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One option per field (defaults suppressed, so :meth:`from_args` sees only what was given)."""
        hints = typing.get_type_hints(cls)
        groups: dict[str, argparse._ArgumentGroup] = {}
        order = ("data", "model", "encoder", "training", "output", "speed")
        fields = sorted(
            (
                f
                for f in dataclasses.fields(cls)
                if f.metadata.get("cli", True) and not (f.name == "preset" and not cls.presets())
            ),  # a task without presets
            key=lambda f: (
                order.index(f.metadata.get("group", "training"))
                if f.metadata.get("group", "training") in order
                else len(order)
            ),
        )
        for f in fields:
            m = f.metadata
            g = m.get("group", "training")
            if g not in groups:
                groups[g] = parser.add_argument_group(g)
            flags = [m.get("flag") or "--" + f.name.replace("_", "-"), *m.get("aliases", ())]
            kind, optional = _base_type(hints[f.name])
            text = m.get("help", "") + cls._default_text(f)
            choices = m.get("choices")
            if f.name == "preset":
                text, choices = cls._preset_help(), tuple(cls.presets())
            if kind is bool:
                # a device-dependent switch (default None) can be set either way: --x / --no-x
                action = (
                    "store_false" if m.get("negate") else argparse.BooleanOptionalAction if optional else "store_true"
                )
                groups[g].add_argument(*flags, dest=f.name, action=action, default=argparse.SUPPRESS, help=text)
                continue
            groups[g].add_argument(
                *flags,
                dest=f.name,
                type=_parser(kind, m.get("check"), optional),
                choices=choices,
                default=argparse.SUPPRESS,
                help=text,
                metavar=m.get("metavar"),
            )

    @classmethod
    def _default_text(cls, f) -> str:
        if f.metadata.get("negate"):
            return ""
        if f.default is not None:
            d = f.default
        else:
            names = list(cls.presets())
            per = {n: cls.preset_defaults(n).get(f.name) for n in names}
            if len(names) > 1 and len({repr(v) for v in per.values()}) > 1:
                return (
                    " (default: "
                    + ", ".join(f"{_fmt(v)} with --preset {n}" for n, v in per.items() if v is not None)
                    + ")"
                )
            d = cls.preset_defaults(names[0] if names else None).get(f.name)
        if d is None or d is False or d == "":
            return ""
        return f" (default: {_fmt(d)})"

    @classmethod
    def _preset_help(cls) -> str:
        devices = cls._merged("DEVICE_PRESETS")
        by = {v: k.upper() if k == "cpu" else "CUDA" for k, v in devices.items()}
        return "named defaults: " + "; ".join(
            f"{n}: {p.about}" + (f" (default on {by[n]})" if n in by else "") for n, p in cls.presets().items()
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace, *, base: dict | None = None):
        """The config from parsed options, over ``base`` (e.g. a ``--config`` file's values)."""
        names = {f.name for f in dataclasses.fields(cls)}
        given = {k: v for k, v in vars(args).items() if k in names}
        from .compat import upgrade

        base = upgrade(cls.TASK, {k: v for k, v in (base or {}).items() if k != "task"})
        return cls.from_dict({**base, **given}, strict=True, saved=False)


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
    from ..data.errors import read_json

    path = Path(path)
    d = read_json(path, "config", error=ValueError)
    if not isinstance(d, dict):
        raise ValueError(f"{path}: a config file holds one JSON object")
    return d
