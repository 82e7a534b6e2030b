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
- keep STRONG_MATCH and WEAK_MATCH (one confirmation by an independent listener, the other abstaining,
  is enough; `keep_consistency: [STRONG_MATCH]` demands both).
"""

from __future__ import annotations

from dataflux.settings import Section

FIXABLE = ("malformed_question", "leakage", "duplicate", "ambiguous")


class Policy(Section):
    keep_consistency: tuple[str, ...] = ("STRONG_MATCH", "WEAK_MATCH")
    obey_judge_discard: bool = True
    discard_split: bool = True
    require_consensus: bool = False

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
