"""One item per image (pipeline/images/items.py): any item, anywhere, in either polarity, comes out as
Fashion-MNIST has its products, its longer side filling the field, centred."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.images.items import to_item


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(20, 300),
    width=st.integers(20, 300),
    margin=st.tuples(st.integers(5, 200), st.integers(5, 200), st.integers(5, 200), st.integers(5, 200)),
    light_item=st.booleans(),
)
def test_any_item_fills_the_field_along_its_longer_side_and_is_centred(height, width, margin, light_item):
    top, bottom, left, right = margin
    page = np.ones((top + height + bottom, left + width + right), np.float32)
    page[top : top + height, left : left + width] = 0.2  # a dark item on light paper
    item = to_item(1 - page if light_item else page)
    assert item.shape == (28, 28) and item.dtype == np.uint8
    rows, columns = np.flatnonzero(item.max(axis=1) > 64), np.flatnonzero(item.max(axis=0) > 64)
    assert max(rows[-1] - rows[0], columns[-1] - columns[0]) + 1 >= 27  # the longer side fills the field
    assert abs((rows[0] + rows[-1]) / 2 - 13.5) <= 1 and abs((columns[0] + columns[-1]) / 2 - 13.5) <= 1
