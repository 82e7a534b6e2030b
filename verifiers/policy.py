"""The keep/discard policy: a judge's verdict (and whether the answerers split) -> keep, or a reason.

The default, and why:
- discard CONFLICT: the ground truth contradicts the winning answer, so the target would teach a wrong
  fact whatever the answerers say;
- discard winner NONE: there is no answer to train on (`unverified` when no answerer could answer);
- obey the judge's DISCARD: it saw the ground truth and both reasoning chains;
- discard a split (both answerers answered, with different letters) as `ambiguous`, even when one of
  them matches the ground truth: two independent listeners hearing different things means the
  question or its options are not clear from the audio. It is a fixable reason: the question goes
  back to the writer. Set `discard_split: false` to keep the winner of a split instead;
- a kept item that the blind answerer (`verifiers.blind`) answers from the text alone, picking the key in
  at least `text_answerable_min_hits` of its option orders (3 of 4: under 5 % by chance), is `flag`ged
  (kept, `text_answerable` true, for the data card and the trainer), `down_weight`ed (kept with
  `weight = text_answerable_weight`) or `discard`ed (reject `text_answerable`). Flag is the default:
  a demo corpus should show the rate, not hide the items;
- a kept item whose key rests on one source (`verifiers.evidence.single_source`: its one confirmation
  comes from the only answerer competent on the leaf, or from one that measures it the annotator's way)
  is `flag`ged as `single_source` (default: published, marked, counted per leaf in the data card),
  `discard`ed (reject `single_source`) or kept plain (`keep`, the old behaviour);
- keep STRONG_MATCH and WEAK_MATCH (one confirmation by an independent listener, the other abstaining,
  is enough; `keep_consistency: [STRONG_MATCH]` demands both).
"""

from __future__ import annotations

from typing import Literal

from dataflux.settings import Section

FIXABLE = ("malformed_question", "leakage", "duplicate", "ambiguous")


class Policy(Section):
    keep_consistency: tuple[str, ...] = ("STRONG_MATCH", "WEAK_MATCH")
    obey_judge_discard: bool = True
    discard_split: bool = True
    require_consensus: bool = False
    text_answerable: Literal["flag", "down_weight", "discard"] = "flag"
    text_answerable_min_hits: int = 3
    text_answerable_weight: float = 0.25
    single_source: Literal["flag", "discard", "keep"] = "flag"

    def sources(self, answers: list[dict], node_path: str, key: str) -> tuple[str | None, bool | None]:
        """(reject reason or None, single_source) for an item about to be kept with `key`."""
        from verifiers.evidence import single_source

        if self.single_source == "keep":
            return None, None
        single = single_source(answers, node_path.rsplit(" > ", 1)[-1], key)
        return ("single_source" if single and self.single_source == "discard" else None), single

    def text_only(self, blind: str | dict | None, key_index: int | None) -> tuple[str | None, bool | None, float]:
        """(reject reason or None, text_answerable, training weight) for an item about to be kept."""
        from verifiers.blind import is_text_answerable

        answerable = is_text_answerable(blind, key_index, self.text_answerable_min_hits)
        if not answerable:
            return None, answerable, 1.0
        if self.text_answerable == "discard":
            return "text_answerable", True, 0.0
        return None, True, self.text_answerable_weight if self.text_answerable == "down_weight" else 1.0

    def decide(self, verdict: dict, letters: list[str | None]) -> str | None:
        """None to keep; otherwise the reject reason code."""
        answered = [x for x in letters[:2] if x is not None]
        split = len(answered) == 2 and answered[0] != answered[1]
        if verdict["consistency_with_caption"] == "CONFLICT":
            return "conflict"
        if verdict["winner"] == "NONE":
            return "no_winner" if answered else "unverified"
        if self.obey_judge_discard and verdict["final_action"] == "DISCARD":
            return "judge_discard"
        if split and self.discard_split:
            return "ambiguous"
        if self.require_consensus and not verdict["consensus"]:
            return "no_consensus"
        if verdict["consistency_with_caption"] not in self.keep_consistency:
            return "weak_match"
        return None


def winner_index(verdict: dict) -> int:
    """Which answer becomes the training target: MODEL_B only when it alone won."""
    return 1 if verdict["winner"] == "MODEL_B" else 0
