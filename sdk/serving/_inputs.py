"""Reading `tamis serve`'s requests: JSON with depth limits, typed and range-checked fields, and the
texts of one request validated and tokenised before they join a batch (`Tokens.prepare`).

Every text is checked on its own (UTF-8-encodable: a lone surrogate such as ``"\\ud800"`` is
refused with ``Tokenizer`` 422; not empty: ``Empty`` 400) and its tokens counted with the served
model's own tokenizer (the encoder protocol's ``tokenizer``), so a bad text fails its own request
only, ``truncate: false`` can refuse an over-long input as TEI does, ``truncation_direction: left``
can keep the end of it, and OpenAI's ``usage`` reports real token counts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tamis.serving._errors import HttpError, invalid

__all__ = ["MAX_JSON_DEPTH", "Prepared", "Tokens", "parse_json"]

MAX_JSON_DEPTH = 32


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(body: bytes) -> Mapping[str, Any]:
    """The request's JSON object (400: not JSON or nested deeper than `MAX_JSON_DEPTH`; 422: not an object)."""
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise HttpError(f"the request body is nested deeper than {MAX_JSON_DEPTH} levels", "Validation", 400) from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise HttpError(f"the request body is not valid JSON: {exc}", "Validation", 400) from None
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise HttpError(f"the request body is nested deeper than {MAX_JSON_DEPTH} levels", "Validation", 400)
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    if not isinstance(data, Mapping):
        raise invalid("the request body must be a JSON object")
    return data


def get_bool(data: Mapping[str, Any], name: str, default: bool) -> bool:
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid(f"{name!r} must be true or false, got {value!r}", name)
    return value


def get_int(data: Mapping[str, Any], name: str, default: int | None, lo: int, hi: int) -> int | None:
    value = data.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{name!r} must be an integer, got {value!r}", name)
    if not lo <= value <= hi:
        raise invalid(f"{name!r} must be between {lo} and {hi}, got {value}", name)
    return value


def get_float(data: Mapping[str, Any], name: str, lo: float, hi: float) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise invalid(f"{name!r} must be a number, got {value!r}", name)
    if not lo <= value <= hi:
        raise invalid(f"{name!r} must be between {lo} and {hi}, got {value}", name)
    return float(value)


def get_texts(value: Any, name: str, limit: int) -> list[str]:
    """One string or a non-empty list of strings (422 otherwise; 413 over ``limit`` texts)."""
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise invalid(f"{name!r} must be a string or a list of strings", name)
    if not texts:
        raise HttpError(f"{name!r} cannot be empty", "Empty", param=name)
    if len(texts) > limit:
        raise HttpError(f"batch size {len(texts)} > maximum allowed batch size {limit}", "Validation", param=name)
    return texts


@dataclass
class Prepared:
    """One request's texts, ready for the batcher (left-truncated where asked) and their token counts."""

    texts: list[str]
    tokens: list[int]


class Tokens:
    """The served model's tokenizer, untruncated, for checking and counting (None: count words)."""

    def __init__(self, tokenizer: Any | None, max_length: int, prompts: Mapping[str, str]) -> None:
        self.max_length = max_length
        self.prompts = dict(prompts)
        self.rust: Any = None
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:
            from tokenizers import Tokenizer

            self.rust = Tokenizer.from_str(backend.to_str())  # our own copy: no truncation, no padding
            self.rust.no_truncation()
            self.rust.no_padding()
            self.specials = len(self.rust.encode("", add_special_tokens=True).ids)
        self.hf = tokenizer

    def _counts(self, texts: Sequence[str], prompt: str) -> list[int]:
        if self.rust is None:
            return [len((prompt + t).split()) + 2 for t in texts]
        return [len(e.ids) for e in self.rust.encode_batch([prompt + t for t in texts], add_special_tokens=True)]

    def prepare(self, texts: Sequence[str], *, kind: str, truncate: bool, left: bool, name: str = "inputs") -> Prepared:
        """Check each text (UTF-8, not empty), count its tokens, apply ``truncate`` / the direction.

        Raises:
            HttpError: ``Empty`` 400, ``Tokenizer`` 422, or ``Validation`` 413 for an input over the
                model's length with ``truncate`` false.
        """
        for i, t in enumerate(texts):
            if not t:
                raise HttpError(f"{name}[{i}] is an empty string; send some text", "Empty", param=name)
            try:
                t.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise HttpError(f"{name}[{i}] is not valid Unicode ({exc.reason} at position {exc.start}); "
                                "send UTF-8 text", "Tokenizer", param=name) from None
        prompt = self.prompts.get(kind, "")
        try:
            counts = self._counts(texts, prompt)
        except Exception as exc:  # the tokenizer refused one of them: say which
            for i, t in enumerate(texts):
                try:
                    self._counts([t], prompt)
                except Exception:
                    raise HttpError(f"{name}[{i}] could not be tokenized: {exc}", "Tokenizer", param=name) from None
            raise HttpError(f"the inputs could not be tokenized: {exc}", "Tokenizer", param=name) from None
        out = list(texts)
        for i, n in enumerate(counts):
            if n <= self.max_length:
                continue
            if not truncate:
                raise HttpError(f"{name}[{i}] must have less than {self.max_length} tokens. Given: {n}; "
                                "shorten it or send truncate: true", "Validation", param=name)
            if left and self.rust is not None:
                out[i] = self._keep_end(texts[i], n - self.max_length)
            counts[i] = self.max_length
        return Prepared(out, counts)

    def _keep_end(self, text: str, drop: int) -> str:
        """``text`` without its first ``drop`` tokens (TEI's ``truncation_direction: left``)."""
        offsets = self.rust.encode(text, add_special_tokens=False).offsets
        return text[offsets[min(drop, len(offsets) - 1)][0]:]

    def tokenize(self, text: str, *, add_special_tokens: bool, prompt: str = "") -> list[dict[str, Any]]:
        """TEI's ``/tokenize`` items of ``text``: id, text, special, start, stop (character offsets)."""
        if self.rust is None:
            raise HttpError("this model has no tokenizer to serve /tokenize with", "Backend")
        enc = self.rust.encode(prompt + text, add_special_tokens=add_special_tokens)
        special = enc.special_tokens_mask
        full = prompt + text
        return [
            {"id": i, "text": full[a:b] if not s else tok, "special": bool(s), "start": None if s else a,
             "stop": None if s else b}
            for i, tok, s, (a, b) in zip(enc.ids, enc.tokens, special, enc.offsets, strict=True)
        ]

    def decode(self, ids: list[list[int]], *, skip_special_tokens: bool) -> list[str]:
        if self.rust is None:
            raise HttpError("this model has no tokenizer to serve /decode with", "Backend")
        vocab = self.rust.get_vocab_size(with_added_tokens=True)
        for row in ids:
            for t in row:
                if not 0 <= t < vocab:
                    raise invalid(f"token id {t} is not in the vocabulary (0..{vocab - 1})", "ids")
        return list(self.rust.decode_batch(ids, skip_special_tokens=skip_special_tokens))
