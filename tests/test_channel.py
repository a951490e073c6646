"""Channel: what every message costs, and the transcript a test can read."""

import numpy as np

from skfal._federated import Channel


def test_bytes_per_phase_and_direction():
    channel = Channel()
    assert channel.up("a", 0, np.zeros(3)) is not None
    channel.down("a", 1, np.zeros((2, 2), dtype=np.float32))
    channel.up("b", 1, np.array([7]))
    assert channel.summary() == {"a": {"up": 24, "down": 16}, "b": {"up": 8, "down": 0}}
    assert channel.messages == []  # no transcript unless asked


def test_broadcast_counts_one_message_per_client_and_records_them():
    channel = Channel(record=True)
    received = channel.broadcast("centres", range(3), np.ones((2, 4)))
    assert np.array_equal(received, np.ones((2, 4)))
    assert channel.summary() == {"centres": {"up": 0, "down": 3 * 64}}
    assert [(m[0], m[1], m[2]) for m in channel.messages] == [
        ("centres", "down", c) for c in range(3)
    ]
    # Nobody to send to: nothing counted.
    assert Channel().broadcast("x", [], np.ones(2)).shape == (2,)


def test_summary_is_a_copy_in_phase_order():
    channel = Channel()
    channel.up("second", 0, np.ones(1))
    channel.up("first", 0, np.ones(1))
    summary = channel.summary()
    assert list(summary) == ["second", "first"]
    summary["second"]["up"] = 0
    assert channel.summary()["second"]["up"] == 8
