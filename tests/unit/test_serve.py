"""What `predict` changes in Ray Data's DataContext it changes for its own datasets only."""

import pytest
import ray.data

from pipeline.data.ingest import order_preserved


def test_preserve_order_is_scoped_to_the_call_and_restored_on_error():
    options = ray.data.DataContext.get_current().execution_options
    before = options.preserve_order
    with order_preserved():
        assert options.preserve_order is True
    assert options.preserve_order == before
    with pytest.raises(RuntimeError), order_preserved():
        raise RuntimeError("a failed write")
    assert options.preserve_order == before
