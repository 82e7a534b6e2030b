"""Question writers. Each takes items `{clip_id, leaf, annotation, round}` and returns questions or
rejects (node mismatch, invalid output after retries, malformed questions)."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Annotated

from pydantic import BaseModel, Field

from dataflux.generate.prompts import PROMPT_VERSION, writer_messages
from dataflux.generate.template import TEMPLATE_VERSION, label_problem, pick_distractors, template_answer
from dataflux.llm.stage import UsesEndpoint
from dataflux.mcq import LETTERS, malformed
from dataflux.stage import Resources, Result, Stage


MAX_QUESTIONS_PER_NODE = 10


# Bounded, as the judge's reasoning is: under guided decoding a weak model that rambles or loops inside a
# string or a list would otherwise run to the token limit and lose the whole reply.
class WrittenQuestion(BaseModel):
    question: str = Field(max_length=300)
    options: list[Annotated[str, Field(max_length=150)]] = Field(min_length=4, max_length=4)


class WriterOutput(BaseModel):
    is_success: bool
    reason: str = Field(max_length=400)
    questions: list[WrittenQuestion] = Field(max_length=MAX_QUESTIONS_PER_NODE)


def question_id(clip_id: str, node_path: str, round_: int, index: int, writer_version: str) -> str:
    raw = f"{clip_id}|{node_path}|{round_}|{index}|{writer_version}"
    return "q_" + hashlib.sha256(raw.encode()).hexdigest()[:24]


def item_id(item: dict) -> str:
    return f"{item['clip_id']}|{item['leaf'].node_path}|r{item['round']}"


class Writer(Stage):
    name = "generate"
    version = "1"
    inputs = ("clip_id", "leaf", "annotation", "round")

    def row(self, item: dict, index: int, question: str, options: list[str], model: str | None,
            prompt_version: str, raw_output: str, key: str | None = None) -> dict:
        leaf = item["leaf"]
        return {"question_id": question_id(item["clip_id"], leaf.node_path, item["round"], index, self.producer),
                "clip_id": item["clip_id"], "node_path": leaf.node_path, "question": question,
                "options": options, "writer_backend": self.backend, "writer_model": model,
                "prompt_version": prompt_version, "raw_output": raw_output, "round": item["round"],
                "answer_key": key, "producer": self.producer, "backend": self.backend, "model_id": model}


class TemplateWriter(Writer):
    backend = "template"

    def process_batch(self, items: list[dict]) -> Result:
        result = Result()
        for item in items:
            leaf, a = item["leaf"], item["annotation"]
            answer = template_answer(leaf, a)
            if answer is None:
                result.rejects.append(self.reject(item_id(item), "node_mismatch",
                                                  f"the measurements do not ground {leaf.name}", item["clip_id"]))
                continue
            correct, labels, never_right = answer
            qid = question_id(item["clip_id"], leaf.node_path, item["round"], 0, self.producer)
            rng = random.Random(qid)  # the key's position is random, and reproducible
            options = [correct] + pick_distractors(rng, labels, never_right)
            rng.shuffle(options)
            problem = label_problem(leaf, leaf.label_of(a), options)
            if problem:
                result.rejects.append(self.reject(item_id(item), "malformed_question", problem, item["clip_id"]))
                continue
            phrasing = leaf.questions[rng.randrange(len(leaf.questions))]
            key = LETTERS[options.index(correct)]
            raw = json.dumps({"question": phrasing, "options": options, "key": key})
            result.rows.append(self.row(item, 0, phrasing, options, None, TEMPLATE_VERSION, raw, key))
        return result


class LLMWriter(UsesEndpoint, Writer):
    """The paper's two-step writer over any OpenAI-compatible endpoint (`openai`, or `local` llama.cpp)."""

    def __init__(self, endpoint, cache_path: str | None, backend: str, questions_per_node: int = 5,
                 max_tokens: int = 1024, resources: Resources | None = None):
        super().__init__(resources or Resources(num_cpus=0.1, batch_size=16))
        self.endpoint, self.cache_path, self.backend = endpoint, cache_path, backend
        self.n, self.max_tokens = questions_per_node, max_tokens

    def process_batch(self, items: list[dict]) -> Result:
        from dataflux.llm.client import LLMError, run_all

        requests = [{"messages": writer_messages(i["annotation"], i["leaf"], i.get("n") or self.n, i.get("feedback")),
                     "template_version": PROMPT_VERSION, "schema": WriterOutput, "temperature": 0.0,
                     "max_tokens": self.max_tokens} for i in items]
        result = Result()
        for item, reply in zip(items, run_all(self.client, requests)):
            if isinstance(reply, LLMError):
                result.rejects.append({**self.reject(item_id(item), "invalid_output", reply.reason, item["clip_id"]),
                                       "detail": json.dumps({"reason": reply.reason, "request": reply.request,
                                                             "response": reply.response})[:20000]})
                continue
            out: WriterOutput = reply.parsed
            if not out.is_success:
                result.rejects.append(self.reject(item_id(item), "node_mismatch", out.reason[:2000], item["clip_id"]))
                continue
            rows, problems = [], []
            for index, q in enumerate(out.questions[:item.get("n") or self.n]):
                problem = malformed(q.question, q.options)
                if problem:
                    problems.append(self.reject(f"{item_id(item)}#{index}", "malformed_question", problem,
                                                item["clip_id"]))
                else:
                    rows.append(self.row(item, index, q.question.strip(), [o.strip() for o in q.options],
                                         self.endpoint.model, PROMPT_VERSION, reply.text))
            result.rows.extend(rows)
            result.rejects.extend(problems)
            if not rows:  # the item itself must end as questions or one reject
                reason = "malformed_question" if problems else "invalid_output"
                result.rejects.append(self.reject(item_id(item), reason, "no usable question", item["clip_id"]))
        return result
