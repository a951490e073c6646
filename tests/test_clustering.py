"""(k, z)-clustering kernels against brute-force definitions."""

import numpy as np
import pytest

from skfal._clustering import assign, cluster, lloyd_statistics, lloyd_update, seed_dz
from tests._helpers import blobs


def test_assign_is_the_brute_force_nearest_centre():
    # Chunked and computed through ||c||^2 - 2 x.c, it must still pick the
    # nearest centre and give the exact Euclidean distance.
    rng = np.random.RandomState(0)
    X, centres = rng.standard_normal((3000, 4)), rng.standard_normal((7, 4))
    labels, distances = assign(X, centres)
    full = np.linalg.norm(X[:, None, :] - centres[None], axis=2)
    assert np.array_equal(labels, full.argmin(axis=1))
    assert np.allclose(distances, full.min(axis=1), rtol=1e-12)


def test_assign_snaps_a_row_on_its_centre_to_zero():
    centres = np.array([[1e6, 2.0], [0.0, 0.0]])
    X = centres + np.array([[1e-5, 0.0], [1e-12, 0.0]])  # rounding-sized offsets
    _, distances = assign(X, centres)
    assert np.array_equal(distances, [0.0, 0.0])
    _, far = assign(centres + 1.0, centres)
    assert np.all(far > 0)


def test_seed_dz_picks_distinct_rows_and_stops_on_duplicates():
    X = np.repeat(np.eye(3), 5, axis=0)  # three distinct rows, five copies each
    chosen = seed_dz(X, 10, 2, np.random.RandomState(1))
    # D^z gives a row already chosen (distance 0) no mass: at most 3 picks.
    assert chosen.size == 3 and len({tuple(X[i]) for i in chosen}) == 3
    # A zero weight is never picked, even first.
    weights = np.r_[np.zeros(5), np.ones(10)]
    for seed in range(20):
        picks = seed_dz(X, 2, 1, np.random.RandomState(seed), weights)
        assert np.all(picks >= 5)


@pytest.mark.parametrize("z", [1, 2])
def test_lloyd_statistics_are_the_per_cluster_sums(z):
    # z = 2: sums of rows and counts (the mean is the new centre).
    # z = 1: Weiszfeld sums of x / ||x - c|| and weights 1 / ||x - c||.
    rng = np.random.RandomState(2)
    X, centres = rng.standard_normal((200, 3)), rng.standard_normal((4, 3))
    sums, weights, counts = lloyd_statistics(X, centres, z)
    labels, distances = assign(X, centres)
    w = np.ones(200) if z == 2 else 1.0 / distances
    for j in range(4):
        mine = labels == j
        assert np.allclose(sums[j], (X[mine] * w[mine, None]).sum(axis=0))
        assert np.isclose(weights[j], w[mine].sum())
        assert counts[j] == mine.sum()


def test_lloyd_update_moves_filled_clusters_and_keeps_empty_ones():
    centres = np.array([[0.0, 0.0], [5.0, 5.0]])
    new = lloyd_update(centres, np.array([[2.0, 4.0], [0.0, 0.0]]), np.array([2.0, 0]))
    assert np.array_equal(new, [[1.0, 2.0], [5.0, 5.0]])
    assert np.array_equal(centres, [[0.0, 0.0], [5.0, 5.0]])  # input untouched


@pytest.mark.parametrize("z", [1, 2])
def test_cluster_finds_well_separated_blobs(z):
    X, truth = blobs(n_per=100, seed=3)
    centres, sizes = cluster(X, 4, z, np.random.RandomState(4))
    labels, _ = assign(X, centres)
    # Each found cluster is one true blob, and each blob one cluster.
    assert sorted(sizes) == [100, 100, 100, 100]
    assert all(len(set(truth[labels == j])) == 1 for j in range(4))


@pytest.mark.parametrize("scale", [1e-12, 1e-9, 1e9, 1e150])
def test_assign_cutoff_is_relative_to_the_data(scale):
    # The on-centre cutoff used to be 1e-9 (1 + max |centre|): at features
    # x 1e-9 it zeroed the distance of many rows that are not on their
    # centre. Scaling rows and centres must scale the distances and zero the
    # same rows (here: the one row placed exactly on a centre).
    rng = np.random.RandomState(5)
    X, centres = rng.standard_normal((50, 3)), rng.standard_normal((4, 3))
    X[7] = centres[2]
    labels, distances = assign(X, centres)
    scaled_labels, scaled = assign(X * scale, centres * scale)
    assert np.array_equal(scaled_labels, labels)
    assert np.array_equal(scaled == 0, distances == 0)
    assert np.flatnonzero(distances == 0).tolist() == [7]
    assert np.allclose(scaled, distances * scale, rtol=1e-12, atol=0)
