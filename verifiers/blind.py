"""The blind answerer: does the audio matter? It sees the question and its options, never the audio, the
caption or the key, and picks an option under K orders of the options. An item whose key it picks in at
least `min_hits` of the K orders (chance is 1 in 4 per order) is `text_answerable`: the text gives the
answer away, and training on it teaches reading, not listening. The policy decides what happens to such
items (`filter.policy.text_answerable`, `text_answerable_min_hits`); the data card reports the rate per
node and per writer.

Backends (`verify.blind.backend`):
- `rules` (default): a text-only check that knows the template writer's leaves. It picks the one option
  that shares content words with the question ("Which option is correct: the man's voice?" -> "A man's
  voice"); failing that, the one option left once the leaf's never-right distractors are struck out.
  It is order-blind, so its K picks agree.
- `local` / `openai`: a text LM through the request layer (the embedded SmolLM2 by default), asked once
  per order; its letters are mapped back to the original options.

Each item gets `blind` (JSON): the backend, model and the original index each order's pick points to
(null: no pick). The verdict carries it to the filter, which compares it with the final key.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Literal

from dataflux.llm.client import Endpoint, LocalEndpoint
from dataflux.mcq import LETTERS, extract_letter, mcq_prompt
from dataflux.settings import Section
from dataflux.stage import Resources, Result, Stage
from dataflux.taxonomy import leaf_named

BLIND_PROMPT_VERSION = "blind-v1"
BLIND_SYSTEM = ("You answer multiple-choice questions about an audio clip that you cannot hear. Pick the option "
                "that is most likely correct from the question and the options alone. End with \"Answer: X\".")
STOPWORDS = frozenset(
    "a an the is are was were be been of in on at to for with by from this that these those it its what which who "
    "whom how do does did you your can could would should there here any some or and not no yes as than then "
    "clip recording audio sound option options correct answer best describes describe kind sort type like".split())


class BlindConfig(Section):
    backend: Literal["rules", "local", "openai", "off"] = "rules"
    orders: int = 4  # option orders asked (cyclic shifts: every option visits every position once per 4)
    endpoint: LocalEndpoint | Endpoint | None = None  # local: the embedded server unless base_url names one
    max_tokens: int = 256


def content_words(text: str) -> set[str]:
    words = re.findall(r"[a-z0-9]+", re.sub(r"'s\b", "", text.lower()))
    return {w for w in words if w not in STOPWORDS and len(w) > 1}


def rule_pick(question: str, options: list[str], node_path: str) -> int | None:
    """The option a reader without ears would pick: the only one echoing the question's content words;
    else the only one left after striking the leaf's never-right distractors; else none."""
    asked = content_words(question)
    overlap = [len(asked & content_words(o)) for o in options]
    best = max(overlap)
    if best > 0 and overlap.count(best) == 1:
        return overlap.index(best)
    leaf = leaf_named(node_path.rsplit(" > ", 1)[-1])
    if leaf is not None and leaf.distractors:
        never = {d.strip().lower() for d in leaf.distractors}
        left = [i for i, o in enumerate(options) if o.strip().lower() not in never]
        if len(left) == 1:
            return left[0]
    return None


def option_orders(question_id: str, n: int, k: int) -> list[list[int]]:
    """K orders of n options: cyclic shifts from a seeded start, so positions balance and re-runs agree."""
    start = int(hashlib.sha256(question_id.encode()).hexdigest()[:8], 16) % n
    return [[(start + j + i) % n for i in range(n)] for j in range(k)]


def key_hits(blind: str | dict | None, key_index: int | None) -> tuple[int, int] | None:
    """(picks of the key, orders asked), or None when the item was not checked."""
    if blind is None or key_index is None:
        return None
    b = json.loads(blind) if isinstance(blind, str) else blind
    picks = b.get("picks") or []
    return sum(p == key_index for p in picks), len(picks)


def is_text_answerable(blind: str | dict | None, key_index: int | None, min_hits: int) -> bool | None:
    hits = key_hits(blind, key_index)
    return None if hits is None or not hits[1] else hits[0] >= min(min_hits, hits[1])


class BlindAnswerer(Stage):
    """Adds `blind` to every item; audio, caption and key are never read."""

    name = "blind"
    version = "1"
    inputs = ("question_id", "node_path", "question", "options")

    def __init__(self, config: BlindConfig = BlindConfig(), endpoint: Endpoint | None = None,
                 cache_path: str | None = None, resources: Resources | None = None):
        super().__init__(resources or Resources(num_cpus=0.1, batch_size=16))
        self.config, self.endpoint, self.cache_path = config, endpoint, cache_path
        self.client = None

    def setup(self) -> None:
        if self.config.backend in ("local", "openai"):
            from dataflux.llm.client import LLMClient

            self.client = LLMClient.open(self.endpoint, self.cache_path)

    def teardown(self) -> None:
        if self.client is not None:
            self.client.close_cache()

    def process_batch(self, items: list[dict]) -> Result:
        orders = [option_orders(i["question_id"], len(i["options"]), self.config.orders) for i in items]
        if self.client is None:
            picks = [[rule_pick(i["question"], list(i["options"]), i["node_path"])] * len(o)
                     for i, o in zip(items, orders)]
            backend, model = "rules", None
        else:
            picks, backend, model = self.ask(items, orders), self.config.backend, self.endpoint.model
        return Result([{**item, "blind": json.dumps({"backend": backend, "model": model, "picks": p})}
                       for item, p in zip(items, picks)])

    def ask(self, items: list[dict], orders: list[list[list[int]]]) -> list[list[int | None]]:
        from dataflux.llm.client import LLMError, run_all

        requests, where = [], []
        for n, (item, item_orders) in enumerate(zip(items, orders)):
            for order in item_orders:
                shown = [item["options"][i] for i in order]
                requests.append({"messages": [{"role": "system", "content": BLIND_SYSTEM},
                                              {"role": "user", "content": mcq_prompt(item["question"], shown)}],
                                 "template_version": BLIND_PROMPT_VERSION, "temperature": 0.0,
                                 "max_tokens": self.config.max_tokens})
                where.append((n, order, shown))
        picks: list[list[int | None]] = [[] for _ in items]
        for (n, order, shown), reply in zip(where, run_all(self.client, requests)):
            letter = None if isinstance(reply, LLMError) else extract_letter(reply.text, shown)[0]
            picks[n].append(order[LETTERS.index(letter)] if letter else None)
        return picks
