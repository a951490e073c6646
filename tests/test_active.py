"""ActiveEstimator: any model, its loss, rounds, and the labeling loop."""

import numpy as np
import pytest
import sklearn
from sklearn.base import BaseEstimator, RegressorMixin, is_classifier, is_regressor
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skfal import ActiveEstimator, LeverageScoreSampler, SensitivitySampler
from skfal._active import _greedy_score, _spread_draw
from tests._helpers import monte_carlo_runs

# Algorithm 1 (the clustering's medoids, the model's loss there, Holder
# constants): the default with groups, and with this sampler centralized.
ALG1 = SensitivitySampler(holder_constant="auto")


def _regression(n=300, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, 3))
    return X, X @ [1.0, 2.0, 3.0] + rng.standard_normal(n)


def _classification(n=400, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, 2))
    return X, np.where(X[:, 0] + 0.5 * X[:, 1] > 0, "yes", "no").astype(object)


def _label_by_days(model, X, truth, per_day, rng):
    """Label ``per_day`` random rows of each batch asked for, until none is."""
    y = np.full(
        X.shape[0], np.nan if truth.dtype.kind == "f" else None, dtype=truth.dtype
    )
    asked, days = [], 0
    while (rows := model.query(X, y)).size:
        today = rng.choice(rows, size=min(per_day, rows.size), replace=False)
        assert not np.any([v == v and v is not None for v in y[today]])  # never twice
        y[today] = truth[today]
        asked.append(today)
        days += 1
    return y, np.concatenate(asked), days


def test_type_follows_the_wrapped_estimator():
    assert is_regressor(ActiveEstimator(LinearRegression()))
    assert is_classifier(ActiveEstimator(LogisticRegression()))
    model = ActiveEstimator(LinearRegression())
    assert not hasattr(model, "predict_proba")
    assert hasattr(ActiveEstimator(LogisticRegression()), "predict_proba")


@pytest.mark.parametrize(
    "kind, n_rounds",
    [
        ("regressor", "auto"),
        ("classifier", "auto"),
        ("Algorithm 1", 1),
        ("Algorithm 1", 2),
    ],
)
def test_weighted_loss_sum_is_unbiased(kind, n_rounds):
    # Round 0's uniform sample (weight n / b_0) and, for each later round,
    # the rows labeled before it at weight 1 plus its Horvitz-Thompson sample
    # over the rest, each estimate the total of any fixed per-row loss without
    # bias given the earlier rounds; a mix with fixed shares does too. The
    # selection itself depends on the labels (the model), the loss does not.
    # For the default the rounds' draws are pivotal with the probabilities
    # _spread_draw states (whatever order the rows duel in); a wrong pi (for
    # instance the candidates' share without the uniform mix) biases the sum.
    X, y = _regression(n=200)
    reference = LinearRegression().fit(X[:40], y[:40])
    loss = (reference.predict(X) - y) ** 2
    # The default's rounds buy 60 of the 200 rows: the rows labeled before
    # a round then hold enough of the total that leaving them out of its
    # estimate (weight 1 each) shows (checked by hand: 10 and 5 standard
    # errors low with 150 runs; with 24 labels it went unseen).
    estimator, kw, budget = LinearRegression(), {}, 60
    if kind == "classifier":  # a cheap one: the design, not the model, is tested
        estimator, y = GaussianNB(), (y > 0).astype(int)
    elif kind == "Algorithm 1":
        kw, budget = {"sampler": ALG1}, 24
    estimates = []
    for seed in range(monte_carlo_runs(250)):
        model = ActiveEstimator(
            estimator, budget=budget, n_rounds=n_rounds, random_state=seed, **kw
        ).fit(X, y)
        assert model.n_queries_ == budget
        estimates.append(model.sample_weight_ @ loss[model.sample_indices_])
    estimates = np.asarray(estimates)
    error = estimates.std() / np.sqrt(estimates.size)
    assert abs(estimates.mean() - loss.sum()) < 4 * error


def _close_share(points):
    """Share of the rows whose nearest other row is nearer than half the
    batch's median nearest-neighbour distance: near-duplicates."""
    distances = np.linalg.norm(points[:, None] - points[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    nearest = distances.min(axis=1)
    return np.mean(nearest < 0.5 * np.median(nearest))


def test_batches_are_spread():
    # A round draws among the rows the model doubts (here a disc of them),
    # the rows of each k-means cluster of candidates dueling for about one
    # place: fewer near-duplicates than a uniform batch of the pool or of
    # the candidates. Dueling in a random order instead (the k-means
    # grouping removed) gives as many as a uniform batch: this fails then.
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, (2000, 2))
    candidates = np.flatnonzero(np.hypot(X[:, 0] - 0.3, X[:, 1]) < 0.45)
    eligible = np.ones(2000, dtype=bool)
    ours, pool, among = [], [], []
    for seed in range(100):
        drawn = _spread_draw(
            X, candidates, candidates.size // 3, eligible, np.random.RandomState(seed)
        ).indices
        batch = np.intersect1d(drawn, candidates)
        other = np.random.RandomState(10**6 + seed)
        ours.append(_close_share(X[batch]))
        among.append(_close_share(X[other.choice(candidates, batch.size, False)]))
        pool.append(_close_share(X[other.choice(2000, batch.size, False)]))
    assert np.mean(ours) < 0.9 * np.mean(pool)
    assert np.mean(ours) < 0.9 * np.mean(among)


def test_greedy_score_is_the_brute_force_minimum(monkeypatch):
    # A regressor's doubt is improved greedy sampling's score, by definition
    # min over labeled rows l of ||x - x_l|| |f(x) - y_l|: checked against
    # that double loop, with chunks smaller than the pool so that a chunk
    # boundary (a row scored against the wrong chunk) would show.
    monkeypatch.setattr("skfal._active._CHUNK", 20)
    rng = np.random.RandomState(0)
    pool, labeled = rng.standard_normal((53, 3)), rng.standard_normal((7, 3))
    predicted, y = rng.standard_normal(53), rng.standard_normal(7)
    reference = [
        min(np.linalg.norm(x - labeled[j]) * abs(f - y[j]) for j in range(7))
        for x, f in zip(pool, predicted, strict=True)
    ]
    np.testing.assert_allclose(_greedy_score(pool, predicted, labeled, y), reference)


def test_greedy_score_picks_what_scikit_activeml_gsi_picks():
    # The same score as the peer's implementation of Wu et al.'s iGS
    # (GreedySamplingTarget, method "GSi"): its first pick of a batch is the
    # row of largest score.
    pool_module = pytest.importorskip("skactiveml.pool")
    from skactiveml.regressor import SklearnRegressor

    X, truth = _regression(n=120, seed=4)
    y = np.full(120, np.nan)
    y[:15] = truth[:15]
    model = LinearRegression().fit(X[:15], y[:15])
    theirs = pool_module.GreedySamplingTarget(method="GSi", random_state=0).query(
        X, y, SklearnRegressor(LinearRegression()), fit_reg=True, batch_size=1
    )
    ours = _greedy_score(X[15:], model.predict(X[15:]), X[:15], y[:15])
    assert theirs[0] == 15 + np.argmax(ours)


def test_regressor_rounds_draw_among_the_largest_greedy_scores():
    # Round 1 draws 90% of its probability among the 10 x quota rows of
    # largest score under the model fitted on round 0's rows (10% uniform):
    # about 90% of its rows are among them, where a uniform draw puts 10 x
    # quota / n = 25%, and about 0.9 x 3 / 10 = 27% among the top 3 x quota.
    # Ranking by another doubt (|f(x)| in place of |f(x) - y_l|) fails the
    # first, a narrower pool of candidates (3 x quota) the second.
    X, y = _regression(n=1200, seed=1)
    shares, narrow = [], []
    for seed in range(10):
        model = ActiveEstimator(
            LinearRegression(), budget=90, n_rounds=1, random_state=seed
        ).fit(X, y)
        first, drawn = model.rounds_[0]["sampled"], model.rounds_[1]["sampled"]
        fitted = LinearRegression().fit(X[first], y[first])
        rest = np.setdiff1d(np.arange(1200), first)
        score = _greedy_score(X[rest], fitted.predict(X[rest]), X[first], y[first])
        top = rest[np.argsort(-score)]
        shares.append(np.isin(drawn, top[: 10 * drawn.size]).mean())
        narrow.append(np.isin(drawn, top[: 3 * drawn.size]).mean())
    assert np.mean(shares) > 0.8
    assert np.mean(narrow) < 0.5


def test_a_regressor_predicting_one_value_draws_uniformly():
    # A model that predicts one value everywhere (gradient boosting on fewer
    # rows than two leaves need) knows nothing of where it errs; its greedy
    # score would only rank rows by distance and chase the outliers. Such a
    # round is uniform: here 50 far rows of 1,050 get about 60 x 50 / 1,050
    # = 2.9 of 60 labels. Without that guard the rounds pick them by the
    # dozen and this fails.
    rng = np.random.RandomState(0)
    X = np.vstack([rng.standard_normal((1000, 2)), rng.normal(10.0, 1.0, (50, 2))])
    y = rng.standard_normal(1050)
    far = []
    for seed in range(10):
        model = ActiveEstimator(DummyRegressor(), budget=60, random_state=seed)
        far.append(np.sum(model.fit(X, y).sample_indices_ >= 1000))
    assert np.mean(far) < 5


@pytest.mark.parametrize("n_rounds", [1, 3])
def test_labeling_over_days_gives_the_one_shot_model(n_rounds):
    # The batches are a function of the seed and of the labels of earlier
    # batches only, so labeling them a few rows a day, in any order, replays
    # the selection fit makes with every label at hand.
    X, truth = _regression(n=400)
    model = ActiveEstimator(
        LinearRegression(), budget=40, n_rounds=n_rounds, random_state=3
    )
    y, asked, days = _label_by_days(model, X, truth, 4, np.random.RandomState(0))
    assert asked.size == np.unique(asked).size == 40  # no label bought twice
    assert days >= 10
    incremental = model.fit(X, y)
    one_shot = ActiveEstimator(
        LinearRegression(), budget=40, n_rounds=n_rounds, random_state=3
    ).fit(X, truth)
    np.testing.assert_array_equal(incremental.sample_indices_, np.sort(asked))
    np.testing.assert_array_equal(one_shot.sample_indices_, np.sort(asked))
    np.testing.assert_array_equal(incremental.sample_weight_, one_shot.sample_weight_)
    np.testing.assert_array_equal(
        incremental.estimator_.coef_, one_shot.estimator_.coef_
    )
    assert len(one_shot.rounds_) == n_rounds + 1
    assert sum(r["medoids"].size + r["sampled"].size for r in one_shot.rounds_) == 40


def test_string_labels_over_days_and_none_for_missing():
    X, truth = _classification()
    make = lambda: ActiveEstimator(  # noqa: E731
        LogisticRegression(), budget=40, n_rounds=2, random_state=1
    )
    y, asked, _ = _label_by_days(make(), X, truth, 7, np.random.RandomState(1))
    incremental, one_shot = make().fit(X, y), make().fit(X, truth)
    assert incremental.classes_.tolist() == ["no", "yes"]
    np.testing.assert_array_equal(
        incremental.predict_proba(X), one_shot.predict_proba(X)
    )
    assert incremental.score(X, truth) > 0.9


def test_fit_reads_only_the_selected_labels():
    X, truth = _regression()
    model = ActiveEstimator(LinearRegression(), budget=30, random_state=0).fit(X, truth)
    partial = np.full_like(truth, np.nan)
    partial[model.sample_indices_] = truth[model.sample_indices_]
    again = ActiveEstimator(LinearRegression(), budget=30, random_state=0).fit(
        X, partial
    )
    np.testing.assert_array_equal(again.estimator_.coef_, model.estimator_.coef_)
    assert sum(b.size for b in model.batches_) == 30


def test_fit_names_the_missing_labels():
    X, truth = _regression()
    y = np.full_like(truth, np.nan)
    first = ActiveEstimator(LinearRegression(), budget=30, random_state=0).query(X)
    y[first] = truth[first]
    with pytest.raises(ValueError, match=r"have no label.*query\(X, y\)"):
        ActiveEstimator(LinearRegression(), budget=30, random_state=0).fit(X, y)


def test_query_needs_an_int_seed_and_leaves_the_estimator_unfitted():
    X, _ = _regression()
    with pytest.raises(ValueError, match="random_state to an int"):
        ActiveEstimator(LinearRegression()).query(X)
    model = ActiveEstimator(LinearRegression(), budget=20, random_state=0)
    rows = model.query(X)
    assert rows.size == 7  # a regressor's uniform initial third of the budget
    assert not hasattr(model, "estimator_") and not hasattr(model, "n_features_in_")


@pytest.mark.parametrize(
    "estimator, kw, initial, n_rounds",
    [
        (LogisticRegression(), {}, 6, 8),  # a tenth, then 8 rounds
        (LinearRegression(), {}, 20, 2),  # a third, then 2 rounds
        (LinearRegression(), {"sampler": ALG1}, 20, 2),  # Algorithm 3: as before
        (LogisticRegression(), {"n_rounds": 3, "initial_fraction": 0.5}, 30, 3),
    ],
)
def test_auto_schedule_follows_the_model_family(estimator, kw, initial, n_rounds):
    # "auto" resolves per selection: the default's doubt rounds buy a tenth
    # uniformly then 8 rounds around a classifier, a third then 2 rounds
    # around a regressor; Algorithms 1 and 3 (and so the federated default)
    # keep two rounds after a third; numbers the user gives are taken as
    # they are.
    # Swapping the families' entries, or "auto" reaching Algorithm 3 as 8
    # rounds, fails here.
    X, y = _classification()
    if not is_classifier(estimator):
        X, y = _regression(n=400)
    model = ActiveEstimator(estimator, budget=60, random_state=0, **kw).fit(X, y)
    assert model.rounds_[0]["sampled"].size == initial
    assert len(model.rounds_) == n_rounds + 1
    assert model.n_queries_ == 60


def test_classifier_rounds_stay_uniform_until_two_classes_are_seen():
    # A tenth of the budget may hold one class only (here class 1 is 5% of
    # the rows and the initial draw misses it): a model of one class doubts
    # nothing, so its round is uniform (no candidates), and the class is
    # found by a later round. Ranking by a one-class model's "doubt" would
    # make a draw of arbitrary rows look informed; this checks the rounds go
    # on and end with both classes.
    rng = np.random.RandomState(0)
    X = rng.standard_normal((1000, 2))
    y = (X[:, 0] > 1.645).astype(int)
    model = ActiveEstimator(LogisticRegression(), budget=60, random_state=4)
    model.fit(X, y)
    assert set(y[model.rounds_[0]["sampled"]]) == {0}  # the case tested
    assert model.classes_.tolist() == [0, 1]


def test_a_class_missing_from_the_initial_sample_is_found():
    # A small, distant cluster is the only place of class "rare". The initial
    # model never saw it; a medoid there (or rows far from every centre)
    # carries the largest loss and distance, so later draws find the class.
    rng = np.random.RandomState(0)
    X = np.vstack([rng.standard_normal((580, 2)), rng.normal(8.0, 0.3, (20, 2))])
    y = np.array(["a"] * 290 + ["b"] * 290 + ["rare"] * 20, dtype=object)
    y[:580] = np.where(X[:580, 0] > 0, "a", "b")
    model = ActiveEstimator(
        LogisticRegression(), sampler=ALG1, budget=60, n_rounds=2, random_state=2
    ).fit(X, y)
    initial = model.rounds_[0]["sampled"]
    assert "rare" not in set(y[initial])  # the case this test is about
    assert "rare" in model.classes_.tolist()
    assert model.predict(X[-20:]).tolist().count("rare") >= 15


@pytest.mark.parametrize("loss", ["loss", "gradient"])
def test_pipeline_and_losses(loss):
    X, y = _classification()
    model = ActiveEstimator(
        make_pipeline(StandardScaler(), LogisticRegression()),
        sampler=ALG1,
        budget=40,
        loss=loss,
        random_state=0,
    ).fit(X, y)
    assert model.loss_ == loss  # the pipeline's last step is linear
    assert model.score(X, y) > 0.85


def test_gradient_falls_back_to_the_loss_without_coefficients():
    X, y = _regression()
    model = ActiveEstimator(
        HistGradientBoostingRegressor(max_iter=20),
        sampler=ALG1,
        budget=60,
        loss="gradient",
        random_state=0,
    ).fit(X, y)
    assert model.loss_ == "loss"


def test_callable_loss_is_called_on_labeled_rows_only():
    X, y = _regression()
    seen = []

    def absolute(estimator, X_rows, y_rows):
        seen.append(X_rows.shape[0])
        return np.abs(estimator.predict(X_rows) - y_rows)

    model = ActiveEstimator(
        LinearRegression(), sampler=ALG1, budget=30, loss=absolute, random_state=0
    ).fit(X, y)
    assert seen and max(seen) <= 30 and model.loss_ is absolute
    with pytest.raises(ValueError, match="one loss per row"):
        ActiveEstimator(
            LinearRegression(),
            sampler=ALG1,
            budget=30,
            loss=lambda e, X, y: [1.0],
            random_state=0,
        ).fit(X, y)


def test_estimator_without_sample_weight():
    X, y = _regression()
    with pytest.raises(ValueError, match="weighted=False"):
        ActiveEstimator(
            KNeighborsRegressor(), budget=30, weighted=True, random_state=0
        ).fit(X, y)
    model = ActiveEstimator(  # the default fits unweighted
        KNeighborsRegressor(n_neighbors=3), budget=30, random_state=0
    ).fit(X, y)
    assert model.predict(X).shape == (X.shape[0],)


def test_model_free_sampler_and_groups():
    X, y = _regression()
    groups = np.arange(X.shape[0]) % 3
    sampler = LeverageScoreSampler(random_state=0)
    model = ActiveEstimator(LinearRegression(), sampler=sampler, budget=30).fit(
        X, y, groups=groups
    )
    reference = LeverageScoreSampler(budget=30, random_state=0).fit(X, groups=groups)
    np.testing.assert_array_equal(model.sample_indices_, reference.sample_indices_)
    # Fresh secrets every fit: the weights agree to rounding (tests/test_secure.py).
    np.testing.assert_allclose(
        model.sample_weight_, reference.sample_weight_, rtol=1e-12
    )


def test_federated_weighted_loss_sum_is_unbiased():
    # The same per-round estimates, with the clustering, the scores and the
    # pivotal draws run over the clients: still unbiased.
    X, y = _regression(n=150)
    groups = np.arange(X.shape[0]) % 3
    reference = LinearRegression().fit(X[:40], y[:40])
    loss = (reference.predict(X) - y) ** 2
    estimates = []
    for seed in range(monte_carlo_runs(120)):
        model = ActiveEstimator(
            LinearRegression(), budget=20, n_rounds=2, random_state=seed
        ).fit(X, y, groups=groups)
        assert model.n_queries_ == 20
        estimates.append(model.sample_weight_ @ loss[model.sample_indices_])
    estimates = np.asarray(estimates)
    error = estimates.std() / np.sqrt(estimates.size)
    assert abs(estimates.mean() - loss.sum()) < 4 * error


def test_federated_trainer_receives_only_the_bought_rows():
    # Attack: look for every row of X (and every label) in every message a
    # client sent. Only the rows whose labels were bought may appear; the
    # others' values never leave their client, whatever the protocol phase.
    from skfal.federated import transcript

    X, truth = _classification(n=240)
    groups = np.repeat([0, 1, 2], 80)
    with transcript() as messages:
        model = ActiveEstimator(
            LogisticRegression(), budget=30, n_rounds=2, random_state=0
        ).fit(X, truth, groups=groups)
    uploaded = [m.array for m in messages if m.sender != "server"]
    values = np.concatenate([a.ravel() for a in uploaded if a.dtype.kind == "f"])
    bought = np.zeros(X.shape[0], dtype=bool)
    bought[model.sample_indices_] = True
    for row in np.flatnonzero(~bought):
        assert not np.isin(X[row], values).any()
    phases = {m.phase for m in messages}
    assert {"losses", "scores", "training_rows", "lloyd"} <= phases
    assert sum(sum(b.values()) for b in model.communication_.values()) == sum(
        m.array.nbytes for m in messages
    )


def _is_pickle(array):
    """Whether ``array``'s bytes are a pickle (protocol 2 to 5): ``\\x80``, the
    protocol, ..., the STOP opcode ``.``."""
    raw = np.ascontiguousarray(array).tobytes()
    return len(raw) > 2 and raw[0] == 0x80 and 2 <= raw[1] <= 5 and raw[-1:] == b"."


def test_federated_round_sends_no_code(monkeypatch):
    """No party unpickles a message, and no message is a pickle or an object.

    Catches the old broadcast of the model: the server sending the fitted
    model as its pickle (a ``uint8`` array) and every client calling
    ``pickle.loads`` on it, which lets whoever controls the server run code
    on every client. Also catches a message that would cross a wire only as
    a pickle (an object array, e.g. class labels sent as they are).
    """
    import io
    import pickle

    import joblib

    from skfal.federated import transcript

    def refuse(*args, **kwargs):
        raise AssertionError("a party unpickled a message")

    for module, name in [(pickle, "loads"), (pickle, "load"), (joblib, "load")]:
        monkeypatch.setattr(module, name, refuse)
    X, truth = _classification(n=240)  # object labels: strings
    groups = np.repeat([0, 1, 2], 80)
    with transcript() as messages:
        ActiveEstimator(
            LogisticRegression(), budget=30, n_rounds=2, random_state=0
        ).fit(X, truth, groups=groups)
    assert {"medoid_loss", "losses", "holder", "scores"} <= {m.phase for m in messages}
    assert "model" not in {m.phase for m in messages}
    for m in messages:
        assert not _is_pickle(m.array), m.phase
        np.save(io.BytesIO(), m.array, allow_pickle=False)  # plain numbers or text


@pytest.mark.parametrize("holder_constant", ["auto", 3.0])
def test_model_round_is_the_same_however_the_rows_are_split(holder_constant):
    # The scores depend on each row's distance, its cluster's medoid loss
    # and Lambda (the largest ratio over the probes of the cluster, wherever
    # they sit): one client holding every row, three clients holding
    # interleaved rows, and the same three in client-by-client order (as on
    # Flower) give the same scores and Lambda. Catches a client sent its
    # probes as rows of X rather than as its own local indices.
    from skfal._federated import (
        Channel,
        InProcessTransport,
        keep_centres,
        model_scores,
        simulated_clients,
    )

    rng = np.random.RandomState(0)
    n = 90
    X = rng.standard_normal((n, 2))
    loss_table = rng.exponential(size=n)  # the trainer's loss at any row
    centres = X[[3, 40, 77]] + 0.1
    labeled = np.sort(rng.choice(n, 30, replace=False))
    medoids = labeled[[2, 5]]  # two centres of the prefix this round
    groups = np.arange(n) % 3

    def run(X, loss_table, client_rows, labeled, medoids, order=None):
        transport = simulated_clients(X, np.zeros(n), client_rows, Channel())
        if order is not None:  # client by client: the federation's order
            transport = InProcessTransport(transport.states, Channel())
        keep_centres(transport, centres)
        return model_scores(
            transport,
            lambda rows: loss_table[rows],
            labeled=labeled,
            medoids=medoids,
            counts={c: rows.size for c, rows in enumerate(client_rows)},
            n_rows=n,
            z=2,
            holder_constant=holder_constant,
        )

    one = run(X, loss_table, [np.arange(n)], labeled, medoids)
    split = [np.flatnonzero(groups == c) for c in range(3)]
    three = run(X, loss_table, split, labeled, medoids)
    order = np.concatenate(split)  # federation position -> row of X
    position = np.argsort(order)  # row of X -> federation position
    ordered = run(
        X[order],
        loss_table[order],
        [np.arange(30) + 30 * c for c in range(3)],
        np.sort(position[labeled]),
        position[medoids],
        order,
    )
    assert one.holder is not None and np.all(one.holder > 0)
    for other, scores in [(three, three.scores), (ordered, ordered.scores[position])]:
        np.testing.assert_allclose(scores, one.scores, rtol=1e-12)
        np.testing.assert_allclose(other.holder, one.holder, rtol=1e-12)


def test_centralized_fit_runs_the_round_with_one_client():
    # The same drivers and client steps, one client holding every row; each
    # round broadcasts the medoid losses of a longer prefix of the centres
    # (Algorithm 3: one cluster more per round here).
    from skfal.federated import transcript

    X, y = _regression(n=200)
    with transcript() as messages:
        model = ActiveEstimator(
            LinearRegression(), sampler=ALG1, budget=30, n_rounds=2, random_state=0
        ).fit(X, y)
    assert {m.sender for m in messages} | {m.receiver for m in messages} == {
        "server",
        "client 0",
    }
    medoid_loss = [m.array for m in messages if m.phase == "medoid_loss"]
    assert [a.shape for a in medoid_loss] == [(1,), (2,)]
    ratios = [m for m in messages if m.phase == "holder" and m.sender == "client 0"]
    assert len(ratios) == 2
    assert not hasattr(model, "communication_")


def test_federated_labeling_over_days():
    X, truth = _regression(n=300)
    groups = np.arange(300) % 4
    model = ActiveEstimator(LinearRegression(), budget=30, random_state=5)
    y = np.full(300, np.nan)
    while (rows := model.query(X, y, groups=groups)).size:
        y[rows[:6]] = truth[rows[:6]]
    incremental = model.fit(X, y, groups=groups)
    one_shot = ActiveEstimator(LinearRegression(), budget=30, random_state=5).fit(
        X, truth, groups=groups
    )
    np.testing.assert_array_equal(incremental.sample_indices_, one_shot.sample_indices_)
    # Fresh secrets every federated fit: the weights, hence the model, agree
    # to rounding.
    np.testing.assert_allclose(
        incremental.estimator_.coef_, one_shot.estimator_.coef_, rtol=1e-12
    )


def test_budget_is_a_hyperparameter():
    X, y = _regression()
    search = GridSearchCV(
        ActiveEstimator(LinearRegression(), random_state=0),
        {"budget": [20, 40], "n_rounds": [1, 2]},
        cv=3,
    ).fit(X, y)
    assert set(search.best_params_) == {"budget", "n_rounds"}


class _SpyRegressor(RegressorMixin, BaseEstimator):
    """Records the sample_weight and extra metadata its fit receives."""

    def fit(self, X, y, sample_weight=None, tag=None):
        self.sample_weight_, self.tag_ = sample_weight, tag
        self.mean_ = np.average(y, weights=sample_weight)
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)


def test_metadata_routing():
    X, y = _regression()
    tag = np.arange(X.shape[0])
    with pytest.raises(ValueError, match="enable_metadata_routing"):
        ActiveEstimator(_SpyRegressor(), budget=30, random_state=0).fit(X, y, tag=tag)
    plain = ActiveEstimator(
        _SpyRegressor(), budget=30, weighted=True, random_state=0
    ).fit(X, y)
    with sklearn.config_context(enable_metadata_routing=True):
        spy = _SpyRegressor().set_fit_request(sample_weight=True, tag=True)
        routed = ActiveEstimator(spy, budget=30, weighted=True, random_state=0).fit(
            X, y, sample_weight=np.full(X.shape[0], 2.0), tag=tag
        )
    rows = routed.sample_indices_
    np.testing.assert_array_equal(routed.estimator_.tag_, tag[rows])
    np.testing.assert_allclose(
        routed.estimator_.sample_weight_, 2.0 * plain.estimator_.sample_weight_
    )


def test_holder_constants_follow_lemma_8():
    # Lambda_j = log(n) max |loss(x) - loss(medoid_j)| / d(x)^z over the
    # labeled rows of cluster j; a float holder_constant is used as given.
    X, y = _regression()
    model = ActiveEstimator(
        LinearRegression(), sampler=ALG1, budget=60, random_state=0
    ).fit(X, y)
    holder = model.rounds_[1]["holder_constants"]
    assert holder is not None and np.all(holder > 0)
    fixed = ActiveEstimator(
        LinearRegression(),
        sampler=SensitivitySampler(holder_constant=0.5),
        budget=60,
        random_state=0,
    ).fit(X, y)
    assert np.all(fixed.rounds_[1]["holder_constants"] == 0.5)


def test_gradient_norm_matches_finite_differences():
    # For a softmax model, the squared norm of the log-loss's gradient in
    # (coef_, intercept_) at one row, by central differences, is what
    # loss="gradient" scores; for squared error it is 4 r^2 (|x|^2 + 1),
    # which the sampler scores up to the constant 4.
    from skfal._active import _model_loss

    rng = np.random.RandomState(0)
    X = rng.standard_normal((90, 2))
    y = np.array(["a", "b", "c"])[np.argmax(X @ rng.standard_normal((2, 3)), 1)]
    clf = LogisticRegression().fit(X, y)
    values, used = _model_loss("gradient", clf, X[:5], y[:5], classifier=True)
    assert used == "gradient"
    for row in range(5):
        numeric = 0.0
        for name in ("coef_", "intercept_"):
            params = getattr(clf, name)
            for index in np.ndindex(params.shape):
                grads = []
                for step in (1e-6, -1e-6):
                    params[index] += step
                    p = clf.predict_proba(X[row : row + 1])[0]
                    grads.append(-np.log(p[list(clf.classes_).index(y[row])]))
                    params[index] -= step
                numeric += ((grads[0] - grads[1]) / 2e-6) ** 2
        assert np.isclose(values[row], numeric, rtol=1e-5)
    reg = LinearRegression().fit(X, X @ [1.0, 2.0] + rng.standard_normal(90))
    target = X @ [1.0, 2.0]
    values, _ = _model_loss("gradient", reg, X, target, classifier=False)
    residual = reg.predict(X) - target
    np.testing.assert_allclose(
        values, residual**2 * (np.einsum("ij,ij->i", X, X) + 1.0)
    )


def test_model_gets_the_weights_divided_by_their_mean():
    # sample_weight_ estimates sums over all n rows (it sums to about n); the
    # estimator gets it divided by its mean, the same minimizer for an
    # unpenalized loss, and a penalty weighed against b labels, not n rows.
    X, y = _regression()
    model = ActiveEstimator(
        _SpyRegressor(), budget=30, weighted=True, random_state=0
    ).fit(X, y)
    received = model.estimator_.sample_weight_
    np.testing.assert_allclose(
        received, model.sample_weight_ / model.sample_weight_.mean()
    )
    assert abs(model.sample_weight_.sum() / X.shape[0] - 1) < 0.5


def test_one_class_bought_is_a_clear_error():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((400, 3))
    y = np.zeros(400, dtype=int)
    y[0] = 1  # one row of the other class: the selection misses it
    with pytest.raises(ValueError, match="one class only"):
        ActiveEstimator(LogisticRegression(), budget=20, random_state=1).fit(X, y)


def test_no_varying_loss_means_distance_scores():
    # A first model that saw one class gives every labeled row loss 0: no
    # Holder constant can be estimated, and the scores fall back to the
    # distances (Lambda infinite) instead of a flat floor.
    from skfal._federated._model_loss import server_holder_constants

    assert server_holder_constants([np.zeros(3), np.full(3, -np.inf)], 100) is None
    holder = server_holder_constants([np.array([0.0, 2.0, -np.inf])], 100)
    np.testing.assert_allclose(holder, np.log(100) * np.array([0.0, 2.0, 2.0]))


@parametrize_with_checks(
    [
        ActiveEstimator(LogisticRegression()),
        ActiveEstimator(HistGradientBoostingRegressor()),
    ]
)
def test_default_parameters_pass_sklearn_checks(estimator, check):
    # The defaults on scikit-learn's own small tables: a fractional budget
    # buys at least 20 labels (or every row), so a classifier sees every
    # class of their 20- to 30-row tables.
    check(estimator)
