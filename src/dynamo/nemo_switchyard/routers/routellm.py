"""RouteLLM's routers (lm-sys/RouteLLM 0.2.0): mf, causal_llm, bert and sw_ranking.

RouteLLM, torch and transformers are an optional extra (``pip install -e ".[routellm]"``)
and are imported only when one of these routers is built. What changes from RouteLLM:

* No OpenAI key and no OpenAI calls. RouteLLM creates an OpenAI client at import time
  (so it needs ``OPENAI_API_KEY`` to import) and asks OpenAI's API for an embedding per
  prompt (mf, sw_ranking). We set a dummy key for the import only, replace RouteLLM's
  client with one that can only hand back embeddings we already have, and fetch the
  embeddings ourselves from any OpenAI-compatible ``/v1/embeddings`` endpoint: one
  request per batch of prompts, asynchronously, so scoring never blocks the event loop
  and concurrent batches overlap (``concurrency`` batches in flight).
* Checkpoints and data from local folders. ``checkpoint_path`` (or the router's
  ``checkpoint_path`` option, as in RouteLLM's config dict) is a local folder, or a hub
  id where the hub can be reached; sw_ranking's battle and embedding data sets are local
  files/folders or hub names.
* causal_llm runs on CPU: RouteLLM hard-codes ``.to("cuda")`` in
  ``routellm/routers/causal_llm/model.py`` (lines 44 and 86); we place the model and the
  inputs on ``device`` (default: cuda if available, else cpu).
* Batches: mf and bert score a whole batch in one forward pass (same numbers as
  RouteLLM's one-prompt-at-a-time code, checked in the tests).

Options (``router_options.<name>`` in the config file): RouteLLM's own per-router
arguments (e.g. ``strong_model``, ``weak_model``, ``num_labels``, ``num_tiers``), plus:

* mf, sw_ranking: ``embedding_base_url`` (required; OpenAI-style, e.g.
  ``http://localhost:8000/v1``), ``embedding_model`` (default ``text-embedding-3-small``,
  what RouteLLM's published checkpoints were trained with), ``embedding_api_key``,
  ``embedding_timeout`` (seconds, default 10), ``embedding_dimensions`` (sent as
  ``dimensions`` if set), ``concurrency`` (batches in flight, default 32).
* mf, bert, causal_llm: ``device`` (``cpu``, ``cuda``, ``cuda:1``...).
* causal_llm: ``tokenizer`` (default: the checkpoint folder when it has tokenizer files,
  else ``model_id`` as RouteLLM does), ``dtype`` (default RouteLLM's ``bfloat16``),
  ``system_message_path`` / ``classifier_message_path`` (default: the checkpoint's
  ``system_ft_v5.txt`` / ``classifier_ft_v5.txt``), ``prompt_format`` (a key of
  RouteLLM's PROMPT_FORMAT_CONFIGS, default ``model_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import urlsplit

import orjson

from .base import Router, RouterError

log = logging.getLogger("switchyard.routers.routellm")

ROUTELLM_VERSION = "0.2.0"
INSTALL_HINT = 'pip install torch==2.13.0 && pip install -e ".[routellm]"'

# RouteLLM's published checkpoints and data (controller.GPT_4_AUGMENTED_CONFIG).
DEFAULT_CHECKPOINTS = {
    "mf": "routellm/mf_gpt4_augmented",
    "bert": "routellm/bert_gpt4_augmented",
    "causal_llm": "routellm/causal_llm_gpt4_augmented",
}
DEFAULT_ARENA_BATTLES = ["lmsys/lmsys-arena-human-preference-55k", "routellm/gpt4_judge_battles"]
DEFAULT_ARENA_EMBEDDINGS = ["routellm/arena_battles_embeddings", "routellm/gpt4_judge_battles_embeddings"]
# Where RouteLLM's module-level OpenAI clients live (``from ... import OPENAI_CLIENT`` copies the binding).
_CLIENT_HOLDERS = (
    "routellm.routers.similarity_weighted.utils",
    "routellm.routers.matrix_factorization.model",
    "routellm.routers.routers",
)

_lock = threading.RLock()  # imports and the short-lived patches around RouteLLM's constructors


# --- importing RouteLLM without OpenAI ------------------------------------------------------


class _OfflineEmbeddings:
    """Stands in for ``OpenAI().embeddings``: serves vectors switchyard already fetched, never the network."""

    def __init__(self) -> None:
        self._local = threading.local()

    @contextlib.contextmanager
    def serving(self, table: dict[str, list[float]]) -> Iterator[None]:
        self._local.table = table
        try:
            yield
        finally:
            self._local.table = None

    def create(self, input: Any, model: Any = None, **_: Any) -> Any:
        table = getattr(self._local, "table", None) or {}
        texts = [input] if isinstance(input, str) else list(input)
        missing = [text for text in texts if text not in table]
        if missing:
            raise RouterError("RouteLLM asked OpenAI for an embedding; switchyard never calls OpenAI (this is a bug)")
        return SimpleNamespace(data=[SimpleNamespace(embedding=table[text], index=i) for i, text in enumerate(texts)])


class _OfflineOpenAI:
    def __init__(self) -> None:
        self.embeddings = _OfflineEmbeddings()


OFFLINE_CLIENT = _OfflineOpenAI()


def _import(module: str, router: str) -> Any:
    """Import a RouteLLM module: a dummy OPENAI_API_KEY for the import only, then no OpenAI client.

    Typed ``Any``: RouteLLM ships no type information, and its module globals are patched here."""
    with _lock:
        dummy = "OPENAI_API_KEY" not in os.environ
        if dummy:
            os.environ["OPENAI_API_KEY"] = "switchyard-does-not-call-openai"
        try:
            imported = importlib.import_module(module)
        except ImportError as exc:
            raise RouterError(
                f"router {router!r} needs RouteLLM {ROUTELLM_VERSION} with torch and transformers, which are not "
                f"installed ({exc}); install the extra: {INSTALL_HINT} (pin torch: an unpinned torch pulls a multi-GB CUDA build)"
            ) from None
        finally:
            if dummy:
                os.environ.pop("OPENAI_API_KEY", None)
        _disable_openai()
        return imported


def _disable_openai() -> None:
    import sys

    for name in _CLIENT_HOLDERS:
        module: Any = sys.modules.get(name)
        if module is not None and getattr(module, "OPENAI_CLIENT", None) is not OFFLINE_CLIENT:
            module.OPENAI_CLIENT = OFFLINE_CLIENT


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise RouterError(f"RouteLLM's routers need torch ({exc}); install the extra: {INSTALL_HINT}") from None
    return torch


def _checkpoint(name: str, checkpoint_path: str | None, options: dict[str, Any]) -> str:
    """--checkpoint-path, else the ``checkpoint_path`` option, else RouteLLM's published checkpoint (hub)."""
    option = options.pop("checkpoint_path", None)
    checkpoint = checkpoint_path or option or DEFAULT_CHECKPOINTS[name]
    checkpoint = str(checkpoint)
    if _looks_local(checkpoint) and not Path(checkpoint).expanduser().is_dir():
        raise RouterError(f"router {name!r}: checkpoint folder {checkpoint!r} does not exist")
    return str(Path(checkpoint).expanduser()) if _looks_local(checkpoint) else checkpoint


def _looks_local(path: str) -> bool:
    """A filesystem path rather than a hub id (``org/name``)."""
    return path.startswith(("/", ".", "~")) or Path(path).exists() or path.count("/") != 1


def _device(torch: Any, option: Any) -> Any:
    if option:
        return torch.device(str(option))
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _construct(name: str, cls: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a RouteLLM constructor; unknown options become a clear RouterError."""
    try:
        return cls(*args, **kwargs)
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc):
            raise RouterError(f"router {name!r}: unknown option ({exc}); see routers/routellm.py for the options") from None
        raise


# --- embeddings from an OpenAI-compatible endpoint ------------------------------------------


class EmbeddingClient:
    """POST /v1/embeddings on any OpenAI-compatible server; keep-alive connections, asyncio, no extra deps.

    ``embed`` sends all texts of a batch in one request. ``embed_blocking`` is the same
    request with urllib, for callers without an event loop.
    """

    def __init__(
        self,
        base_url: str,
        model: str = "text-embedding-3-small",
        api_key: str | None = None,
        timeout: float = 10.0,
        dimensions: int | None = None,
        max_idle: int = 16,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RouterError(f"embedding_base_url must be an http(s) URL such as http://localhost:8000/v1, got {base_url!r}")
        path = parts.path.rstrip("/") or "/v1"
        self.url = f"{parts.scheme}://{parts.netloc}{path}/embeddings"
        self.model = model
        self.timeout = float(timeout)
        self.dimensions = dimensions
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._target = f"{path}/embeddings".encode()
        self._headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "switchyard"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        host = parts.netloc.rpartition("@")[2].encode()
        self._head = b"".join(
            [b"POST ", self._target, b" HTTP/1.1\r\nHost: ", host, b"\r\n"]
            + [f"{key}: {value}\r\n".encode() for key, value in self._headers.items()]
        )
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._max_idle = max_idle

    def _body(self, texts: Sequence[str]) -> bytes:
        payload: dict[str, Any] = {"input": list(texts), "model": self.model, "encoding_format": "float"}
        if self.dimensions:
            payload["dimensions"] = int(self.dimensions)
        return orjson.dumps(payload)

    def _parse(self, status: int, body: bytes, count: int) -> list[list[float]]:
        if status != 200:
            raise RouterError(f"embeddings service {self.url} answered {status}: {body[:300].decode('utf-8', 'replace')}")
        try:
            items = orjson.loads(body)["data"]
            items = sorted(items, key=lambda item: item.get("index", 0))
            vectors = [item["embedding"] for item in items]
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise RouterError(f"embeddings service {self.url} sent an unexpected body ({exc!r}): {body[:200]!r}") from None
        if len(vectors) != count or not all(isinstance(vector, list) for vector in vectors):
            raise RouterError(f"embeddings service {self.url} returned {len(vectors)} float vectors for {count} inputs")
        return vectors

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        body = self._body(texts)
        try:
            status, data = await asyncio.wait_for(self._exchange(body), self.timeout)
        except TimeoutError:
            raise RouterError(f"embeddings service {self.url} did not answer within {self.timeout:g}s") from None
        except (OSError, EOFError, ValueError) as exc:
            raise RouterError(f"embeddings service {self.url} failed: {exc!r}") from None
        return self._parse(status, data, len(texts))

    async def _exchange(self, body: bytes) -> tuple[int, bytes]:
        request = self._head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        while self._idle:  # a kept-alive connection the server may have closed meanwhile: retry on a fresh one
            reader, writer = self._idle.pop()
            try:
                return await self._send(reader, writer, request)
            except _Stale:
                continue
        reader, writer = await asyncio.open_connection(self._host, self._port, ssl=self._ssl)
        try:
            return await self._send(reader, writer, request, fresh=True)
        except _Stale:
            raise EOFError("connection closed before a response") from None

    async def _send(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, fresh: bool = False) -> tuple[int, bytes]:
        import httptools

        done = False
        received = False
        status = 0
        chunks: list[bytes] = []

        class _Sink:
            def on_body(self, data: bytes) -> None:
                chunks.append(data)

            def on_message_complete(self) -> None:
                nonlocal done
                done = True

        parser = httptools.HttpResponseParser(_Sink())
        try:
            writer.write(request)
            await writer.drain()
            while not done:
                data = await reader.read(65536)
                if not data:
                    if not received and not fresh:
                        raise _Stale
                    raise EOFError("the embeddings service closed the connection mid-response")
                received = True
                parser.feed_data(data)
            status = parser.get_status_code()
            keep = parser.should_keep_alive()
        except _Stale:
            writer.close()
            raise
        except (ConnectionError, httptools.HttpParserError) as exc:
            writer.close()
            if not received and not fresh:
                raise _Stale from None
            raise EOFError(repr(exc)) from None
        except BaseException:  # timeout / cancellation: the connection is in an unknown state
            writer.close()
            raise
        if keep and len(self._idle) < self._max_idle:
            self._idle.append((reader, writer))
        else:
            writer.close()
        return status, b"".join(chunks)

    def embed_blocking(self, texts: Sequence[str]) -> list[list[float]]:
        request = urllib.request.Request(self.url, data=self._body(texts), headers=self._headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._ssl) as response:
                return self._parse(response.status, response.read(), len(texts))
        except urllib.error.HTTPError as exc:
            return self._parse(exc.code, exc.read(), len(texts))
        except OSError as exc:
            raise RouterError(f"embeddings service {self.url} failed: {exc!r}") from None

    def close(self) -> None:
        for _, writer in self._idle:
            with contextlib.suppress(Exception):
                writer.close()
        self._idle.clear()


class _Stale(Exception):
    """A reused keep-alive connection was closed by the server before answering."""


# --- the routers ----------------------------------------------------------------------------


class _RouteLLMRouter(Router):
    """Common construction: checkpoint + options, as RouteLLM's per-router config dict."""

    @classmethod
    def from_config(cls, *, checkpoint_path: str | None = None, options: dict[str, Any] | None = None) -> _RouteLLMRouter:
        options = dict(options or {})
        option = options.pop("checkpoint_path", None)  # RouteLLM's config dict carries it; --checkpoint-path wins
        return cast(Any, cls)(checkpoint_path or option, **options)  # each subclass takes (checkpoint, **options)


class _EmbeddingRouter(_RouteLLMRouter):
    """A router that scores prompt embeddings fetched from an OpenAI-compatible service."""

    def _init_embeddings(self, options: dict[str, Any]) -> None:
        base_url = options.pop("embedding_base_url", None)
        if not base_url:
            raise RouterError(
                f"router {self.name!r} scores prompt embeddings: set router_options.{self.name}.embedding_base_url to an "
                "OpenAI-compatible endpoint (e.g. http://localhost:8000/v1), and embedding_model / embedding_api_key as it needs"
            )
        self.embeddings = EmbeddingClient(
            str(base_url),
            model=str(options.pop("embedding_model", "text-embedding-3-small")),
            api_key=options.pop("embedding_api_key", None),
            timeout=float(options.pop("embedding_timeout", 10.0)),
            dimensions=options.pop("embedding_dimensions", None),
        )
        concurrency = int(options.pop("concurrency", 32))
        if concurrency < 1:
            raise RouterError(f"router {self.name!r}: concurrency must be >= 1")
        self.concurrency = concurrency  # type: ignore[misc]  # batches in flight; the Scorer reads it per instance

    def _check_dims(self, vectors: list[list[float]], expected: int) -> None:
        for vector in vectors:
            if len(vector) != expected:
                raise RouterError(
                    f"router {self.name!r}: the embedding service returned {len(vector)}-dimensional vectors, "
                    f"the router expects {expected} (embedding_model {self.embeddings.model!r})"
                )

    def _scores(self, prompts: Sequence[str], vectors: list[list[float]]) -> list[float]:
        raise NotImplementedError

    async def ascore_batch(self, prompts: Sequence[str]) -> list[float]:
        vectors = await self.embeddings.embed(prompts)
        return await asyncio.to_thread(self._scores, prompts, vectors)

    def score_batch(self, prompts: Sequence[str]) -> list[float]:
        return self._scores(prompts, self.embeddings.embed_blocking(prompts))

    def close(self) -> None:
        self.embeddings.close()


class MatrixFactorizationRouter(_EmbeddingRouter):
    """RouteLLM's ``mf``: a matrix-factorisation model over the prompt's embedding (published threshold 0.11593)."""

    name = "mf"

    def __init__(self, checkpoint_path: str | None = None, **options: Any) -> None:
        routers = _import("routellm.routers.routers", self.name)  # first: a missing extra is the first thing to fix
        torch = _torch()
        self._init_embeddings(options)
        checkpoint = _checkpoint(self.name, checkpoint_path, options)
        device = options.pop("device", None)
        inner = _construct(self.name, routers.MatrixFactorizationRouter, checkpoint, **options)
        self.model = inner.model.to(_device(torch, device)).eval()
        self.inner = inner  # RouteLLM's router (calculate_strong_win_rate works with OFFLINE_CLIENT serving)
        self._pair = [inner.strong_model_id, inner.weak_model_id]
        self.text_dim = self.model.text_proj[0].in_features if self.model.use_proj else self.model.P.embedding_dim

    def _scores(self, prompts: Sequence[str], vectors: list[list[float]]) -> list[float]:
        """MFModel.forward + pred_win_rate for a whole batch (RouteLLM does one prompt per call)."""
        self._check_dims(vectors, self.text_dim)
        torch = _torch()
        model = self.model
        device = model.get_device()
        with torch.no_grad():
            ids = torch.tensor(self._pair, dtype=torch.long, device=device)
            model_embed = torch.nn.functional.normalize(model.P(ids), p=2, dim=1)  # (2, dim)
            prompt_embed = torch.tensor(vectors, device=device)  # (batch, text_dim), float32 as RouteLLM
            if model.use_proj:
                prompt_embed = model.text_proj(prompt_embed)
            logits = model.classifier(model_embed.unsqueeze(0) * prompt_embed.unsqueeze(1)).squeeze(-1)  # (batch, 2)
            return torch.sigmoid(logits[:, 0] - logits[:, 1]).tolist()


class BertRouter(_RouteLLMRouter):
    """RouteLLM's ``bert``: a BERT sequence classifier (published threshold 0.40660)."""

    name = "bert"

    def __init__(self, checkpoint_path: str | None = None, **options: Any) -> None:
        routers = _import("routellm.routers.routers", self.name)
        torch = _torch()
        checkpoint = _checkpoint(self.name, checkpoint_path, options)
        device = options.pop("device", None)
        inner = _construct(self.name, routers.BERTRouter, checkpoint, **options)
        self.device = _device(torch, device)
        inner.model = inner.model.to(self.device).eval()
        self.inner = inner
        self.model, self.tokenizer = inner.model, inner.tokenizer

    def score_batch(self, prompts: Sequence[str]) -> list[float]:
        """BERTRouter.calculate_strong_win_rate for a padded batch: 1 - P(tie or weak model wins)."""
        torch = _torch()
        inputs = self.tokenizer(list(prompts), return_tensors="pt", padding=True, truncation=True).to(self.device)
        with torch.no_grad():
            logits = self.model(**inputs).logits.float()
        probs = torch.softmax(logits, dim=-1)
        return (1.0 - probs[:, -2:].sum(dim=-1)).clamp(0.0, 1.0).tolist()


class CausalLLMRouter(_RouteLLMRouter):
    """RouteLLM's ``causal_llm``: a Llama-3 classifier that generates a [[1]]..[[5]] rating (threshold 0.09620)."""

    name = "causal_llm"

    def __init__(self, checkpoint_path: str | None = None, **options: Any) -> None:
        model_module = _import("routellm.routers.causal_llm.model", self.name)
        checkpoint = _checkpoint(self.name, checkpoint_path, options)
        device_option = options.pop("device", None)
        dtype_option = options.pop("dtype", None)
        tokenizer_option = options.pop("tokenizer", None)
        system_path = options.pop("system_message_path", None)
        classifier_path = options.pop("classifier_message_path", None)
        prompt_format_id = options.pop("prompt_format", None)
        # RouteLLM's CausalLLMRouter arguments, same defaults.
        score_threshold = int(options.pop("score_threshold", 4))
        special_tokens = list(options.pop("special_tokens", ["[[1]]", "[[2]]", "[[3]]", "[[4]]", "[[5]]"]))
        num_outputs = int(options.pop("num_outputs", 5))
        model_type = options.pop("model_type", "causal")
        model_id = options.pop("model_id", "meta-llama/Meta-Llama-3-8B")
        flash_attention_2 = bool(options.pop("flash_attention_2", False))
        if options:
            raise RouterError(f"router {self.name!r}: unknown options {sorted(options)}; see routers/routellm.py for the options")

        configs = _import("routellm.routers.causal_llm.configs", self.name)
        llm_utils = _import("routellm.routers.causal_llm.llm_utils", self.name)
        torch = _torch()
        device = _device(torch, device_option)
        dtype = getattr(torch, str(dtype_option)) if dtype_option else None

        tokenizer = tokenizer_option or (checkpoint if _has_tokenizer(checkpoint) else model_id)
        config = configs.RouterModelConfig(
            model_id=str(tokenizer),  # RouteLLM loads the tokenizer from model_id (a gated hub repo by default)
            model_type=model_type,
            flash_attention_2=flash_attention_2,
            special_tokens=special_tokens,
            num_outputs=num_outputs,
        )
        prompt_key = prompt_format_id or model_id
        if prompt_key not in configs.PROMPT_FORMAT_CONFIGS:
            raise RouterError(f"router {self.name!r}: no prompt format {prompt_key!r}; RouteLLM has {sorted(configs.PROMPT_FORMAT_CONFIGS)}")
        prompt_format = llm_utils.load_prompt_format(prompt_key)
        system_message = _read_text(checkpoint, system_path, "system_ft_v5.txt")
        classifier_message = _read_text(checkpoint, classifier_path, "classifier_ft_v5.txt")

        classifier_cls = _device_classifier(model_module.CausalLLMClassifier)
        get_model = model_module.get_model

        def placed(*args: Any, **kwargs: Any) -> Any:
            return _Placed(get_model(*args, **kwargs), device, dtype)

        with _lock:  # CausalLLMClassifier.__init__ calls get_model(...).to("cuda"): place it on our device instead
            model_module.get_model = placed
            try:
                self.classifier = classifier_cls(
                    config=config,
                    ckpt_local_path=checkpoint,
                    score_threshold=score_threshold,
                    prompt_format=prompt_format,
                    prompt_field="messages",
                    additional_fields=[],
                    use_last_turn=True,
                )
            finally:
                model_module.get_model = get_model
        self.classifier.device = device
        import functools

        self.to_openai_messages = functools.partial(llm_utils.to_openai_api_messages, system_message, classifier_message)
        self.device = device

    def score(self, prompt: str) -> float:
        """RouteLLM's CausalLLMRouter.calculate_strong_win_rate."""
        output = self.classifier({"messages": self.to_openai_messages([prompt])})
        if output is None:
            return 1.0  # RouteLLM: no rating token generated -> strong
        return float(min(1.0, max(0.0, 1.0 - float(output["binary_prob"]))))

    def score_batch(self, prompts: Sequence[str]) -> list[float]:
        return [self.score(prompt) for prompt in prompts]


class SWRankingRouter(_EmbeddingRouter):
    """RouteLLM's ``sw_ranking``: Elo ratings from arena battles weighted by similarity to the prompt."""

    name = "sw_ranking"

    def __init__(self, checkpoint_path: str | None = None, **options: Any) -> None:
        routers = _import("routellm.routers.routers", self.name)
        self._init_embeddings(options)
        options.pop("checkpoint_path", None)
        if checkpoint_path:
            log.warning("router sw_ranking has no checkpoint; ignoring %r (set arena_battle_datasets / arena_embedding_datasets)", checkpoint_path)
        battles = _as_list(options.pop("arena_battle_datasets", DEFAULT_ARENA_BATTLES))
        embeddings = _as_list(options.pop("arena_embedding_datasets", DEFAULT_ARENA_EMBEDDINGS))
        # RouteLLM's constructor, with its load_dataset reading local files/folders as well as hub names.
        original = routers.load_dataset
        with _lock:
            routers.load_dataset = _load_dataset
            try:
                self.inner = _construct(self.name, routers.SWRankingRouter, battles, embeddings, **options)
            finally:
                routers.load_dataset = original
        self.text_dim = int(self.inner.arena_conv_embedding.shape[1])

    def _scores(self, prompts: Sequence[str], vectors: list[list[float]]) -> list[float]:
        self._check_dims(vectors, self.text_dim)
        with OFFLINE_CLIENT.embeddings.serving(dict(zip(prompts, vectors))):
            return [float(min(1.0, max(0.0, self.inner.calculate_strong_win_rate(prompt)))) for prompt in prompts]


# --- helpers --------------------------------------------------------------------------------


class _Placed:
    """Wraps the model CausalLLMClassifier gets, so that its ``.to("cuda")`` goes to our device (and dtype)."""

    def __init__(self, model: Any, device: Any, dtype: Any) -> None:
        self._model, self._device, self._dtype = model, device, dtype

    def to(self, *_: Any, **__: Any) -> Any:
        if self._dtype is not None:
            return self._model.to(device=self._device, dtype=self._dtype)
        return self._model.to(self._device)


_classifiers: dict[type, type] = {}


def _device_classifier(base: type) -> type:
    """CausalLLMClassifier with ``__call__`` on ``self.device`` (RouteLLM's is ``.to("cuda")``, model.py:86)."""
    if base in _classifiers:
        return _classifiers[base]

    class DeviceCausalLLMClassifier(base):  # type: ignore[misc, valid-type]
        device: Any = "cpu"

        def __call__(self, row: dict[str, Any]) -> Any:
            import numpy as np
            import torch

            row = self.preprocess(row)
            input_ids = torch.as_tensor(row["input_ids"]).to(self.device).reshape(1, -1)
            with torch.no_grad():
                output_new = self.model.generate(
                    input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    pad_token_id=self.tokenizer.eos_token_id,
                    output_scores=True,
                    return_dict_in_generate=True,
                )
            row["output_ids"] = output_new.sequences.squeeze(0)[input_ids.shape[1] :].cpu()
            label_token_idx = next((i for i, x in enumerate(row["output_ids"]) if x >= self.orig_vocab_size), None)
            if label_token_idx is None:
                return None
            score_logits = np.array(output_new.scores[label_token_idx][0].float().to("cpu")[self.orig_vocab_size :])
            row["score_logits"] = score_logits
            binary_prob, softmax_scores = self.compute_routing_prob(score_logits)
            row["softmax_scores"] = softmax_scores
            row["binary_prob"] = binary_prob
            return self.postprocess(row)

    _classifiers[base] = DeviceCausalLLMClassifier
    return DeviceCausalLLMClassifier


def _has_tokenizer(checkpoint: str) -> bool:
    folder = Path(checkpoint)
    return folder.is_dir() and any((folder / name).exists() for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"))


def _read_text(checkpoint: str, path: str | None, filename: str) -> str:
    """An explicit file, the checkpoint folder's file, or the file from the checkpoint's hub repo (as RouteLLM)."""
    if path:
        return Path(path).expanduser().read_text()
    local = Path(checkpoint) / filename
    if local.is_file():
        return local.read_text()
    if Path(checkpoint).is_dir():
        raise RouterError(f"router 'causal_llm': {local} is missing (or set system_message_path / classifier_message_path)")
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id=checkpoint, filename=filename)).read_text()


def _as_list(value: Any) -> list[str]:
    return [str(value)] if isinstance(value, (str, os.PathLike)) else [str(item) for item in value]


def _load_dataset(source: str, split: str = "train") -> Any:
    """``datasets.load_dataset`` that also reads local files (.parquet, .json, .jsonl, .csv) and save_to_disk folders."""
    import datasets

    path = Path(source).expanduser()
    if path.is_file():
        kind = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv"}.get(path.suffix.lower())
        if kind is None:
            raise RouterError(f"router 'sw_ranking': cannot read {path} (use .parquet, .json, .jsonl or .csv)")
        return datasets.load_dataset(kind, data_files=str(path), split=split)
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "state.json").exists() or (path / "dataset_dict.json").exists():
            loaded = datasets.load_from_disk(str(path))
            return loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
        return datasets.load_dataset(str(path), split=split)
    if _looks_local(source):
        raise RouterError(f"router 'sw_ranking': data set {source!r} does not exist")
    return datasets.load_dataset(source, split=split)
