"""Endpoint pools: a router file (``--router FILE``) read into a typed `RouterSpec`.

The file is litellm's own ``model_list`` shape, as JSON or YAML (PyYAML comes with litellm),
so a litellm proxy's ``config.yaml`` model list works as it is::

    model_list:
      - model_name: pool/qwen            # the group: what --model names
        litellm_params:
          model: openai/qwen2.5-7b       # the deployment's provider/model
          api_base: http://gpu-1:8000/v1
          api_key: os.environ/GPU_KEY    # read from the environment, never written anywhere
          weight: 2                      # simple-shuffle: picked twice as often
      - model_name: pool/qwen
        litellm_params: {model: openai/qwen2.5-7b, api_base: http://gpu-2:8000/v1}
    router_settings:                     # optional (or the same keys at the top level)
      routing_strategy: simple-shuffle
      num_retries: 2
      allowed_fails: 3
      cooldown_time: 5
      timeout: 30
      fallbacks: [{pool/qwen: [pool/backup]}]

Every problem is a :class:`~instraug_dsl.errors.DataError` naming the file and the field
(``router.yaml: model_list[1].litellm_params.api_base: expected an http(s) URL ...``); a
missing file is a :class:`~instraug_dsl.errors.UsageError`.  ``os.environ/NAME`` references
are resolved here, once, so a missing variable is reported before anything is sent.

Nothing here imports litellm: `instraug_dsl.runtime.llm` builds the ``litellm.Router`` from
`RouterSpec.router_arguments` (once per run) and sends pooled calls through it.  The keys
never leave this object except into that router: `RouterSpec.secrets` lists them so every
message is masked, and `RouterSpec.summary` (what ``summary.json`` records) holds the
deployments' redacted addresses only.
"""

from __future__ import annotations

import importlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..contract.run import PoolDeployment, PoolSummary
from ..errors import DataError, UsageError
from ..fsio import describe_os_error, json_kind
from .constrain import Capability, capability, provider_of
from .secrets import redact_url, url_secrets

#: litellm's routing strategies (``Router(routing_strategy=...)``).
ROUTING_STRATEGIES = (
    "simple-shuffle",
    "least-busy",
    "usage-based-routing",
    "usage-based-routing-v2",
    "latency-based-routing",
    "cost-based-routing",
)
#: The strategy and retries when the file gives none (litellm's own defaults, written down
#: so that the summary and the deadline of a pooled call can say what was used).  Without
#: ``allowed_fails``/``cooldown_time`` litellm's own cool-down policy applies (a deployment
#: failing most of its calls of the minute, or answering 429/401/404, cools down for 5 s).
DEFAULT_STRATEGY = "simple-shuffle"
DEFAULT_NUM_RETRIES = 2
#: How a key or address is taken from the environment (litellm's own spelling).
ENV_PREFIX = "os.environ/"
#: Seconds a pooled call may take on top of its attempts' deadlines (the router's waits).
DEADLINE_SLACK_S = 10.0

_SETTINGS = (
    "routing_strategy",
    "num_retries",
    "allowed_fails",
    "cooldown_time",
    "timeout",
    "fallbacks",
)
_TOP = ("model_list", "router_settings")
_DEPLOYMENT = ("model_name", "litellm_params", "rpm", "tpm")
_PARAMS = ("model", "api_base", "api_key", "api_version", "weight", "rpm", "tpm")


@dataclass(frozen=True, slots=True)
class Deployment:
    """One deployment of a group: a model at an address (its key is never shown)."""

    model_name: str
    model: str
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    api_version: str | None = None
    weight: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    #: Where it is in the file (``model_list[2]``), for messages.
    where: str = ""

    @property
    def address(self) -> str:
        """The redacted address (user-info and query values masked), or the provider's own."""
        if self.api_base:
            return redact_url(self.api_base)
        return f"{provider_of(self.model) or self.model}'s default endpoint"


@dataclass(frozen=True, slots=True)
class RouterSpec:
    """A router file, checked: deployments by group and the router's settings.

    Settings left out are None (litellm's defaults apply: see `DEFAULT_NUM_RETRIES`).
    ``source`` is the file as given, for messages.
    """

    source: str
    deployments: tuple[Deployment, ...]
    routing_strategy: str | None = None
    num_retries: int | None = None
    allowed_fails: int | None = None
    cooldown_time: float | None = None
    timeout: float | None = None
    #: ``(group, (fallback group, ...))`` in the file's order.
    fallbacks: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def groups(self) -> tuple[str, ...]:
        """The model names (groups), in the order the file first names them."""
        return tuple(dict.fromkeys(d.model_name for d in self.deployments))

    def serves(self, model: str) -> bool:
        """True when `model` is one of the file's groups (a call to it goes through the pool)."""
        return any(d.model_name == model for d in self.deployments)

    def group(self, model: str) -> tuple[Deployment, ...]:
        """The deployments of group `model`."""
        return tuple(d for d in self.deployments if d.model_name == model)

    def chain(self, model: str) -> tuple[str, ...]:
        """`model` and every group a call to it may fall back to (transitively, in order)."""
        table = dict(self.fallbacks)
        seen = [model]
        for name in seen:  # grows while iterating: breadth-first
            seen.extend(g for g in table.get(name, ()) if g not in seen)
        return tuple(seen)

    def secrets(self) -> list[str]:
        """Every credential in the file: keys and the user-info/query values of addresses."""
        found: list[str] = []
        for d in self.deployments:
            if d.api_key:
                found.append(d.api_key)
            found.extend(url_secrets(d.api_base))
        return found

    def capability(self, model: str) -> Capability | None:
        """How a pooled call to `model` carries a decoding constraint: the capability every
        deployment it may reach shares, or None when they differ (or none has one)."""
        found = {
            capability(provider_of(d.model), d.api_base)
            for name in self.chain(model)
            for d in self.group(name)
        }
        if len(found) != 1:
            return None
        return found.pop()

    def attempt_timeout(self, timeout: float) -> float:
        """The deadline of one attempt on one deployment: the file's ``timeout``, else the
        run's ``--timeout``."""
        return self.timeout if self.timeout is not None else timeout

    def deadline(self, model: str, timeout: float) -> float:
        """The deadline of one pooled call: every attempt the router may make (its retries,
        in the group and each fallback group) plus `DEADLINE_SLACK_S` for its waits."""
        retries = self.num_retries if self.num_retries is not None else DEFAULT_NUM_RETRIES
        attempts = (1 + retries) * len(self.chain(model))
        return self.attempt_timeout(timeout) * attempts + DEADLINE_SLACK_S

    def router_arguments(self, keys: Mapping[int, str] | None = None) -> dict[str, Any]:
        """``litellm.Router(**...)`` for this file, keys included (``keys`` supplies one for
        the deployments at those indexes that have none).  Only `instraug_dsl.runtime.llm`
        calls this; the result must never be shown or written."""
        model_list = []
        for index, d in enumerate(self.deployments):
            params: dict[str, Any] = {"model": d.model}
            key = d.api_key or (keys or {}).get(index)
            for name, value in (
                ("api_base", d.api_base),
                ("api_key", key),
                ("api_version", d.api_version),
                ("weight", d.weight),
                ("rpm", d.rpm),
                ("tpm", d.tpm),
            ):
                if value is not None:
                    params[name] = value
            model_list.append(
                {
                    "model_name": d.model_name,
                    "litellm_params": params,
                    # Our own ids: a reply names the deployment that served it.
                    "model_info": {"id": deployment_id(index)},
                }
            )
        arguments: dict[str, Any] = {
            "model_list": model_list,
            "routing_strategy": self.routing_strategy or DEFAULT_STRATEGY,
            "num_retries": self.num_retries
            if self.num_retries is not None
            else DEFAULT_NUM_RETRIES,
        }
        if self.allowed_fails is not None:
            arguments["allowed_fails"] = self.allowed_fails
        if self.cooldown_time is not None:
            arguments["cooldown_time"] = self.cooldown_time
        if self.fallbacks:
            arguments["fallbacks"] = [{name: list(to)} for name, to in self.fallbacks]
        if self.timeout is not None:
            arguments["timeout"] = self.timeout
        return arguments

    def summary(self) -> PoolSummary:
        """What ``summary.json`` records: the settings used and every deployment's model and
        redacted address (never a key, nor whether there is one)."""
        return PoolSummary(
            file=Path(self.source).name,
            routing_strategy=self.routing_strategy or DEFAULT_STRATEGY,
            num_retries=self.num_retries if self.num_retries is not None else DEFAULT_NUM_RETRIES,
            allowed_fails=self.allowed_fails,
            cooldown_time=self.cooldown_time,
            timeout=self.timeout,
            fallbacks={name: to for name, to in self.fallbacks},
            deployments=tuple(
                PoolDeployment(
                    id=deployment_id(i),
                    model_name=d.model_name,
                    model=d.model,
                    api_base=redact_url(d.api_base) if d.api_base else None,
                    weight=d.weight,
                    rpm=d.rpm,
                    tpm=d.tpm,
                )
                for i, d in enumerate(self.deployments)
            ),
        )


def deployment_id(index: int) -> str:
    """The id of the deployment at `index` of the file's ``model_list``."""
    return f"deployment-{index}"


# ------------------------------------------------------------------------------ loading


def load_router(path: Path | str) -> RouterSpec:
    """Read and check a router file (JSON, or YAML for ``.yaml``/``.yml``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--router {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--router {path}: is a folder; give the router file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = describe_os_error(exc) if isinstance(exc, OSError) else "not UTF-8 text"
        raise DataError(f"{path}: cannot read ({reason})") from None
    data = _parse(path, text)
    return _Reader(str(path), os.environ).spec(data)


def _parse(path: Path, text: str) -> Any:
    if path.suffix.lower() in (".yaml", ".yml"):
        yaml: Any = importlib.import_module("yaml")  # PyYAML: a dependency of litellm

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "cannot be parsed"
            raise DataError(f"{path}{line}: not valid YAML ({problem})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        hint = "" if path.suffix.lower() == ".json" else "; YAML files end in .yaml or .yml"
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}{hint})") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply") from None


class _Reader:
    """Checks one file's data; every error names the file and the field."""

    def __init__(self, source: str, env: Mapping[str, str]) -> None:
        self.source = source
        self.env = env

    def fail(self, where: str, problem: str) -> DataError:
        return DataError(
            f"{self.source}: {where}: {problem}" if where else f"{self.source}: {problem}"
        )

    def spec(self, data: Any) -> RouterSpec:
        if not isinstance(data, dict):
            raise self.fail("", f"expected an object with `model_list`, got {json_kind(data)}")
        self.only(data, "", _TOP + _SETTINGS)
        settings = data.get("router_settings", {})
        if not isinstance(settings, dict):
            raise self.fail("router_settings", f"expected an object, got {json_kind(settings)}")
        self.only(settings, "router_settings", _SETTINGS)
        both = sorted(set(settings) & set(data))
        if both:
            raise self.fail(
                both[0], "given both at the top level and under router_settings; keep one"
            )
        merged = {**{k: v for k, v in data.items() if k in _SETTINGS}, **settings}

        def at(name: str) -> str:
            return f"router_settings.{name}" if name in settings else name

        if "model_list" not in data:
            raise self.fail("model_list", "missing (the deployments, in litellm's shape)")
        items = data["model_list"]
        if not isinstance(items, list) or not items:
            got = json_kind(items) if not isinstance(items, list) else "an empty list"
            raise self.fail("model_list", f"expected a non-empty list of deployments, got {got}")
        deployments = tuple(
            self.deployment(item, f"model_list[{i}]") for i, item in enumerate(items)
        )
        groups = {d.model_name for d in deployments}
        strategy = merged.get("routing_strategy")
        if strategy is not None and strategy not in ROUTING_STRATEGIES:
            raise self.fail(
                at("routing_strategy"),
                f"unknown strategy {strategy!r}; one of: {', '.join(ROUTING_STRATEGIES)}",
            )
        return RouterSpec(
            source=self.source,
            deployments=deployments,
            routing_strategy=strategy,
            num_retries=self.count(merged, "num_retries", at("num_retries")),
            allowed_fails=self.count(merged, "allowed_fails", at("allowed_fails")),
            cooldown_time=self.seconds(merged, "cooldown_time", at("cooldown_time"), zero=True),
            timeout=self.seconds(merged, "timeout", at("timeout"), zero=False),
            fallbacks=self.fallbacks(merged.get("fallbacks"), at("fallbacks"), groups),
        )

    def only(self, data: Mapping[str, Any], where: str, known: tuple[str, ...]) -> None:
        for key in data:
            if key not in known:
                place = f"{where}.{key}" if where else str(key)
                raise self.fail(place, f"unknown field; expected one of: {', '.join(known)}")

    def deployment(self, item: Any, where: str) -> Deployment:
        if not isinstance(item, dict):
            raise self.fail(where, f"expected an object, got {json_kind(item)}")
        self.only(item, where, _DEPLOYMENT)
        name = self.text(item, "model_name", where, required=True)
        assert name is not None
        params = item.get("litellm_params")
        here = f"{where}.litellm_params"
        if params is None:
            raise self.fail(here, "missing (the deployment's model, api_base, api_key ...)")
        if not isinstance(params, dict):
            raise self.fail(here, f"expected an object, got {json_kind(params)}")
        self.only(params, here, _PARAMS)
        model = self.text(params, "model", here, required=True)
        assert model is not None
        api_base = self.resolve(self.text(params, "api_base", here), f"{here}.api_base")
        if api_base is not None and not api_base.lower().startswith(("http://", "https://")):
            scheme = api_base.split("://", 1)[0] if "://" in api_base else ""
            # Not echoed: a key pasted in the wrong field must not be printed.
            got = f"a {scheme}:// URL" if scheme.isalnum() else "something else (not shown)"
            raise self.fail(
                f"{here}.api_base",
                f"expected an http(s) URL, e.g. http://127.0.0.1:8000/v1, got {got}",
            )
        for limit in ("rpm", "tpm"):
            if limit in params and limit in item:
                raise self.fail(f"{where}.{limit}", f"also given as {here}.{limit}; keep one")
        rpm = self.count(params, "rpm", f"{here}.rpm", positive=True)
        tpm = self.count(params, "tpm", f"{here}.tpm", positive=True)
        weight = self.number(params, "weight", f"{here}.weight")
        if weight is not None and weight <= 0:
            raise self.fail(f"{here}.weight", f"expected a positive number, got {weight:g}")
        return Deployment(
            model_name=name,
            model=model,
            api_base=api_base,
            api_key=self.resolve(self.text(params, "api_key", here), f"{here}.api_key"),
            api_version=self.text(params, "api_version", here),
            weight=weight,
            rpm=rpm if rpm is not None else self.count(item, "rpm", f"{where}.rpm", positive=True),
            tpm=tpm if tpm is not None else self.count(item, "tpm", f"{where}.tpm", positive=True),
            where=where,
        )

    def text(
        self, data: Mapping[str, Any], key: str, where: str, *, required: bool = False
    ) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                raise self.fail(f"{where}.{key}", "missing")
            return None
        if not isinstance(value, str) or not value.strip():
            got = "an empty string" if isinstance(value, str) else json_kind(value)
            raise self.fail(f"{where}.{key}", f"expected a non-empty string, got {got}")
        return value.strip()

    def resolve(self, value: str | None, where: str) -> str | None:
        """``os.environ/NAME`` read from the environment; anything else as written."""
        if value is None or not value.startswith(ENV_PREFIX):
            return value
        name = value[len(ENV_PREFIX) :]
        if not name:
            raise self.fail(where, f"{ENV_PREFIX} needs a variable name, e.g. {ENV_PREFIX}MY_KEY")
        found = self.env.get(name)
        if not found:
            raise self.fail(where, f"the environment variable {name} is not set")
        return found

    def number(self, data: Mapping[str, Any], key: str, where: str) -> float | None:
        value = data.get(key)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self.fail(where, f"expected a number, got {json_kind(value)}")
        return float(value)

    def count(
        self, data: Mapping[str, Any], key: str, where: str, *, positive: bool = False
    ) -> int | None:
        value = data.get(key)
        if value is None:
            return None
        least = 1 if positive else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            got = str(value) if isinstance(value, int | float) else json_kind(value)
            kind = "a positive integer" if positive else "an integer of at least 0"
            raise self.fail(where, f"expected {kind}, got {got}")
        return value

    def seconds(self, data: Mapping[str, Any], key: str, where: str, *, zero: bool) -> float | None:
        value = self.number(data, key, where)
        if value is not None and (value < 0 or (value == 0 and not zero)):
            kind = "at least 0" if zero else "more than 0"
            raise self.fail(where, f"expected a number of seconds {kind}, got {value:g}")
        return value

    def fallbacks(
        self, value: Any, where: str, groups: set[str]
    ) -> tuple[tuple[str, tuple[str, ...]], ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(
                where, f"expected a list like [{{group: [fallback, ...]}}], got {json_kind(value)}"
            )
        out: list[tuple[str, tuple[str, ...]]] = []
        for i, entry in enumerate(value):
            here = f"{where}[{i}]"
            if not isinstance(entry, dict) or len(entry) != 1:
                raise self.fail(here, "expected an object with one group: {group: [fallback, ...]}")
            ((name, targets),) = entry.items()
            if name not in groups:
                raise self.fail(
                    here, f"unknown group {name!r}; the model_names are: {_names(groups)}"
                )
            if isinstance(targets, str):
                targets = [targets]
            if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
                raise self.fail(f"{here}.{name}", "expected a list of group names")
            for target in targets:
                if target not in groups:
                    raise self.fail(
                        f"{here}.{name}",
                        f"unknown group {target!r}; the model_names are: {_names(groups)}",
                    )
                if target == name:
                    raise self.fail(f"{here}.{name}", f"group {name!r} falls back to itself")
            out.append((name, tuple(targets)))
        return tuple(out)


def _names(groups: set[str]) -> str:
    return ", ".join(sorted(groups))
