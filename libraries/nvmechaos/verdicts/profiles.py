"""Threshold profiles (YAML under ``variables/``): the metrics a limit can be set on, the limits of
each profile, and the overrides of one check on top. The checks themselves are in
:mod:`nvmechaos.verdicts.thresholds` and :mod:`nvmechaos.verdicts.consistency`.

A threshold file holds named profiles::

    profiles:
      default:
        description: Seed limits for a host file or block device
        limits:                      # every job, every direction that did I/O
          min_iops: 1000
          max_latency_ms: 50
        write:                       # one direction only (read, write, trim)
          min_iops: 500
        jobs:                        # one fio job (by name), optionally one of its directions
          tenant_b:
            min_iops: 100
            read: {max_p99_latency_ms: 20}
      emulated:
        extends: default             # start from another profile's limits
        limits: {min_iops: 200}

The most specific value wins: job+direction, then job, then direction, then ``limits``. Metric
names carry their unit (``_ms``, ``_mbps`` = 10^6 bytes/s, ``_pct``) and their sense (``min_``:
the measured value must not be lower; ``max_``: not higher).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nvmechaos.errors import ThresholdError
from nvmechaos.fio.model import DIRECTIONS
from nvmechaos.units import require_text

PERFORMANCE = "performance"
CONSISTENCY = "consistency"


@dataclass(frozen=True)
class Metric:
    """A metric a limit can be set on."""

    key: str
    category: str
    label: str
    unit: str
    description: str


def _latency_metrics() -> list[Metric]:
    metrics = [
        Metric("max_mean_latency_ms", PERFORMANCE, "mean latency", "ms", "mean completion latency"),
        Metric("max_latency_ms", PERFORMANCE, "max latency", "ms", "worst single I/O latency"),
    ]
    for name, percent in (
        ("50", 50.0),
        ("90", 90.0),
        ("95", 95.0),
        ("99", 99.0),
        ("99_9", 99.9),
        ("99_99", 99.99),
    ):
        metrics.append(
            Metric(
                f"max_p{name}_latency_ms",
                PERFORMANCE,
                f"p{percent:g} latency",
                "ms",
                f"{percent:g}th percentile completion latency",
            )
        )
    return metrics


METRICS: dict[str, Metric] = {
    metric.key: metric
    for metric in [
        Metric("min_iops", PERFORMANCE, "IOPS", "IOPS", "I/O operations per second"),
        Metric("min_bw_mbps", PERFORMANCE, "bandwidth", "MB/s", "bandwidth in 10^6 bytes per second"),
        *_latency_metrics(),
        Metric(
            "max_iops_cov_pct",
            CONSISTENCY,
            "IOPS coefficient of variation",
            "%",
            "standard deviation of per-interval IOPS over its mean",
        ),
        Metric(
            "min_iops_min_mean_ratio",
            CONSISTENCY,
            "IOPS min/mean ratio",
            "",
            "lowest per-interval IOPS over the mean",
        ),
        Metric(
            "max_bw_cov_pct",
            CONSISTENCY,
            "bandwidth coefficient of variation",
            "%",
            "standard deviation of per-interval bandwidth over its mean",
        ),
        Metric(
            "min_bw_min_mean_ratio",
            CONSISTENCY,
            "bandwidth min/mean ratio",
            "",
            "lowest per-interval bandwidth over the mean",
        ),
        Metric(
            "max_latency_p99_99_p50_ratio",
            CONSISTENCY,
            "latency p99.99/p50 ratio",
            "",
            "tail latency spread: 99.99th percentile over the median",
        ),
    ]
}
_PROFILE_KEYS = {"description", "extends", "limits", "jobs", *DIRECTIONS}


@dataclass(frozen=True)
class OverrideScope:
    """Where a keyword override applies: its key as given, and the job and direction it names."""

    key: str
    job: str | None
    direction: str | None


@dataclass(frozen=True)
class LimitLayer:
    """Limits from one place (a profile in a file, or a keyword's overrides), by scope.

    ``scopes`` lists the scoped keyword overrides of the layer, so a verdict can refuse one that
    names a job or direction its result does not have (a file's ``jobs:`` serve many job files and
    are not checked).
    """

    limits: Mapping[str, float] = field(default_factory=dict)
    directions: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    jobs: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    job_directions: Mapping[tuple[str, str], Mapping[str, float]] = field(default_factory=dict)
    scopes: tuple[OverrideScope, ...] = ()

    def limits_for(self, job: str, direction: str) -> dict[str, float]:
        merged: dict[str, float] = dict(self.limits)
        merged.update(self.directions.get(direction, {}))
        merged.update(self.jobs.get(job, {}))
        merged.update(self.job_directions.get((job, direction), {}))
        return merged


@dataclass(frozen=True)
class Profile:
    """A validated threshold profile: its own limits, then any keyword overrides on top."""

    name: str
    source: str
    description: str = ""
    layers: tuple[LimitLayer, ...] = ()

    def limits_for(self, job: str, direction: str) -> dict[str, float]:
        """The limits that apply to ``direction`` of ``job``.

        Within a layer the most specific scope wins; a later layer (keyword overrides) wins over
        the profile's own limits whatever their scope, so ``min_iops=1e9`` applies to every job.
        """
        merged: dict[str, float] = {}
        for layer in self.layers:
            merged.update(layer.limits_for(job, direction))
        return merged

    def with_overrides(self, overrides: Mapping[str, object]) -> Profile:
        """A copy with a layer of limits from keyword arguments on top.

        Keys are metric names (``min_iops``), optionally scoped: ``read.min_iops``,
        ``JOB.min_iops``, ``JOB.read.min_iops``. Values are numbers or numeric strings.

        Raises:
            ThresholdError: unknown metric, or a value that is not a non-negative number.
        """
        if not overrides:
            return self
        limits: dict[str, float] = {}
        directions: dict[str, dict[str, float]] = {}
        jobs: dict[str, dict[str, float]] = {}
        job_directions: dict[tuple[str, str], dict[str, float]] = {}
        scopes: list[OverrideScope] = []
        for raw_key, raw_value in overrides.items():
            *scope, key = raw_key.split(".")
            where = f"override {raw_key}"
            value = _limit_value(raw_value, key, where)
            if not scope:
                limits[key] = value
            elif len(scope) == 1 and scope[0] in DIRECTIONS:
                directions.setdefault(scope[0], {})[key] = value
                scopes.append(OverrideScope(raw_key, None, scope[0]))
            elif len(scope) == 1 and scope[0]:
                jobs.setdefault(scope[0], {})[key] = value
                scopes.append(OverrideScope(raw_key, scope[0], None))
            elif len(scope) == 2 and scope[0] and scope[1] in DIRECTIONS:
                job_directions.setdefault((scope[0], scope[1]), {})[key] = value
                scopes.append(OverrideScope(raw_key, scope[0], scope[1]))
            else:
                raise ThresholdError(
                    f"{where}: use METRIC, DIRECTION.METRIC, JOB.METRIC or JOB.DIRECTION.METRIC"
                    f" (DIRECTION is {', '.join(DIRECTIONS)})"
                )
        layer = LimitLayer(limits, directions, jobs, job_directions, tuple(scopes))
        return Profile(self.name, self.source, self.description, (*self.layers, layer))


def _limit_value(raw: object, key: str, where: str) -> float:
    if key not in METRICS:
        raise ThresholdError(f"{where}: unknown metric '{key}' (known: {', '.join(sorted(METRICS))})")
    if isinstance(raw, bool):
        raise ThresholdError(f"{where}: limit {raw!r} is not a number")
    try:
        value = float(raw) if isinstance(raw, int | float | str) else math.nan
    except ValueError:
        value = math.nan
    if math.isnan(value) or math.isinf(value):
        raise ThresholdError(f"{where}: limit {raw!r} is not a number")
    if value < 0:
        raise ThresholdError(f"{where}: limit {raw!r} is negative")
    return value


def _limit_map(raw: Any, where: str) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ThresholdError(f"{where}: expected a mapping of metric: limit, got {type(raw).__name__}")
    return {str(key): _limit_value(value, str(key), f"{where}.{key}") for key, value in raw.items()}


def load_profiles(path: Path | str) -> dict[str, Profile]:
    """Load and validate every profile in a threshold file.

    Raises:
        ThresholdError: the file is missing or not YAML, or any profile is invalid (the message names
            the file and the key).
    """
    source = Path(path)
    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ThresholdError(f"threshold file '{source}' does not exist") from None
    except OSError as error:
        raise ThresholdError(f"cannot read threshold file '{source}': {error.strerror}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ThresholdError(f"{source}: not valid YAML{at}: {getattr(error, 'problem', error)}") from None
    if not isinstance(document, dict) or not isinstance(document.get("profiles"), dict):
        raise ThresholdError(f"{source}: expected a top-level 'profiles:' mapping")
    raw_profiles: dict[str, Any] = {str(name): raw for name, raw in document["profiles"].items()}
    resolved: dict[str, Profile] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> Profile:
        if name in resolved:
            return resolved[name]
        if name in chain:
            raise ThresholdError(f"{source}: profiles.{name}: 'extends' forms a loop ({' -> '.join(chain)})")
        raw = raw_profiles[name]
        where = f"{source}: profiles.{name}"
        if not isinstance(raw, dict):
            raise ThresholdError(f"{where}: expected a mapping")
        unknown = set(map(str, raw)) - _PROFILE_KEYS
        if unknown:
            raise ThresholdError(
                f"{where}: unknown key '{sorted(unknown)[0]}' (allowed: {', '.join(sorted(_PROFILE_KEYS))})"
            )
        base = Profile(name, str(source))
        parent = raw.get("extends")
        if parent is not None:
            if not isinstance(parent, str):
                raise ThresholdError(f"{where}.extends: expected a profile name, got {parent!r}")
            if parent not in raw_profiles:
                raise ThresholdError(f"{where}.extends: no profile '{parent}'")
            base = resolve(str(parent), (*chain, name))
        profile = _build_profile(name, raw, where, base, str(source))
        resolved[name] = profile
        return profile

    for name in raw_profiles:
        resolve(name, ())
    return resolved


def _build_profile(name: str, raw: Mapping[str, Any], where: str, base: Profile, source: str) -> Profile:
    inherited = base.layers[0] if base.layers else LimitLayer()
    limits = {**inherited.limits, **_limit_map(raw.get("limits"), f"{where}.limits")}
    directions = {d: dict(v) for d, v in inherited.directions.items()}
    for direction in DIRECTIONS:
        own = _limit_map(raw.get(direction), f"{where}.{direction}")
        if own:
            directions.setdefault(direction, {}).update(own)
    jobs = {j: dict(v) for j, v in inherited.jobs.items()}
    job_directions = {k: dict(v) for k, v in inherited.job_directions.items()}
    raw_jobs = raw.get("jobs") or {}
    if not isinstance(raw_jobs, dict):
        raise ThresholdError(f"{where}.jobs: expected a mapping of job name to limits")
    for job, job_raw in raw_jobs.items():
        job_where = f"{where}.jobs.{job}"
        if not isinstance(job_raw, dict):
            raise ThresholdError(f"{job_where}: expected a mapping")
        plain = {k: v for k, v in job_raw.items() if k not in DIRECTIONS}
        for key, value in plain.items():
            if isinstance(value, dict) and key not in METRICS:
                raise ThresholdError(
                    f"{job_where}.{key}: '{key}' is not a direction ({', '.join(DIRECTIONS)}) or a metric"
                )
        jobs.setdefault(str(job), {}).update(_limit_map(plain, job_where))
        for direction in DIRECTIONS:
            if direction in job_raw:
                job_directions.setdefault((str(job), direction), {}).update(
                    _limit_map(job_raw[direction], f"{job_where}.{direction}")
                )
    description = str(raw.get("description", base.description))
    layer = LimitLayer(limits, directions, jobs, job_directions)
    return Profile(name, source, description, (layer,))


def get_profile(path: Path | str, name: str) -> Profile:
    """Load one profile by name.

    Raises:
        ThresholdError: the file is invalid, or has no such profile (the message lists those it has).
    """
    profiles = load_profiles(path)
    if name not in profiles:
        raise ThresholdError(f"{path}: no profile '{name}' (profiles: {', '.join(sorted(profiles))})")
    return profiles[name]


def check_category(profile: Profile, overrides: Mapping[str, object], category: str) -> Profile:
    """Apply overrides, refusing metrics that belong to another verdict.

    Raises:
        ThresholdError: an override names a metric of another category or an unknown one.
    """
    for raw_key in overrides:
        key = raw_key.rsplit(".", 1)[-1]
        metric = METRICS.get(key)
        if metric is not None and metric.category != category:
            keyword = (
                "Fio Result Should Be Consistent"
                if metric.category == CONSISTENCY
                else "Fio Result Should Meet Thresholds"
            )
            raise ThresholdError(
                f"override {raw_key}: '{key}' is a {metric.category} metric; check it with '{keyword}'"
            )
    return profile.with_overrides(overrides)


def load_profile(
    thresholds: str | Path, name: str, overrides: Mapping[str, object], category: str
) -> Profile:
    """Profile ``name`` of the threshold file ``thresholds``, with the overrides of one check on top.

    Raises:
        ArgumentError: ``thresholds`` is not text or a path, or is empty.
        ThresholdError: the file or the profile is invalid, or an override is unknown, not a number or
            a metric of another ``category`` (see :func:`check_category`).
    """
    path = Path(require_text(thresholds, "thresholds", "the path of a YAML threshold file"))
    return check_category(get_profile(path, name), overrides, category)
