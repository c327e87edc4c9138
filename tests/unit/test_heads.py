from __future__ import annotations

import numpy as np

from shared.heads import HEADS, heads, masked_softmax, region_mask, sigmoid


def test_heads_follow_the_taxonomy() -> None:
    assert [h.key for h in heads()] == list(HEADS)
    sizes = {h.key: h.size for h in heads()}
    assert sizes == {
        "category": 21,
        "color": 21,
        "length": 8,
        "sleeve": 5,
        "neckline": 12,
        "collar": 10,
        "fit": 6,
        "print": 20,
        "material": 26,
        "detail": 40,
    }
    assert [h.key for h in heads() if h.multi] == ["print", "material", "detail"]


def test_region_masks() -> None:
    assert region_mask("category", "onepiece").sum() == 2
    assert (
        region_mask("length", "top").tolist()[:3] == [True, True, True]
        and region_mask("length", "top").sum() == 3
    )
    assert not region_mask("sleeve", "bottom").any()
    assert region_mask("color", "bottom").all()


def test_masked_softmax_and_sigmoid_are_safe() -> None:
    logits = np.array([[1.0, 2.0, 3.0], [5.0, 1.0, 0.0]])
    mask = np.array([[True, False, True], [False, False, False]])
    probabilities = masked_softmax(logits, mask)
    assert probabilities[0, 1] == 0 and np.isclose(probabilities[0].sum(), 1.0)
    assert probabilities[0, 2] > probabilities[0, 0]
    assert (probabilities[1] == 0).all()  # no valid label: nothing, not NaN
    assert sigmoid(np.array([-1e4, 0.0, 1e4])).tolist() == [0.0, 0.5, 1.0]


def test_head_probabilities_respect_each_items_region() -> None:
    from shared.heads import head_probabilities
    from shared.taxonomy import CATEGORY, REGIONS

    rng = np.random.default_rng(0)
    logits = {h.key: rng.normal(size=(2, h.size)) for h in heads()}
    probabilities = head_probabilities(logits, np.array([REGIONS.index("top"), REGIONS.index("onepiece")]))
    top, onepiece = probabilities["category"]
    assert np.isclose(top.sum(), 1) and np.isclose(onepiece.sum(), 1)
    assert {CATEGORY.labels[i].ko for i in np.flatnonzero(onepiece)} == {"드레스", "점프수트"}
    assert probabilities["sleeve"].shape == (2, 5) and np.isclose(probabilities["sleeve"][0].sum(), 1)
    assert ((probabilities["print"] > 0) & (probabilities["print"] < 1)).all()  # independent sigmoids
