from dataflux.wer import WerCounts, word_errors


def test_hand_computed_wer_parts():
    c = word_errors("the cat sat on the mat", "the cat sat on a mat today")
    assert (c.substitutions, c.deletions, c.insertions, c.reference_words) == (1, 0, 1, 6)
    assert abs(c.wer - 2 / 6) < 1e-9


def test_empty_hypothesis_is_all_deletions():
    c = word_errors("red green blue", "")
    assert (c.substitutions, c.deletions, c.insertions, c.empty_hypotheses) == (0, 3, 0, 1)
    assert c.wer == 1.0


def test_normalisation_and_corpus_sum():
    assert word_errors("Meet me at six o'clock!", "meet me at 6 o'clock").wer == 0.0
    total = WerCounts()
    total += word_errors("a b c d", "a b c d")
    total += word_errors("e f", "e x")
    assert total.reference_words == 6 and total.substitutions == 1 and abs(total.wer - 1 / 6) < 1e-9
