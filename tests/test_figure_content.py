"""What a reader of each figure kind can check, drawn from fabricated run records: timestep
axes with a readable number of ticks, units in the labels (accuracy in %, differences of
accuracies in points), titles in words with T_max (and L where the method converts), the
oracle drawn above every other mark, the Top-K operating point marked, and every point below
a clipped axis drawn on its edge and counted in the note."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from record_fixtures import fabricate

from snnlib.config import Config
from snnlib.pipeline.records import select_runs
from snnlib.study import convergence, figures
from snnlib.study import regulariser as study

T_LONG = 32  # the quick profile's QCFS T_max: 32 timestep labels did not fit
MOST_TICKS = figures.MAX_TICKS + 1  # t = 1 comes on top of the regular steps


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """QCFS at T = 32 and TET at T = 6, α ∈ {0, 0.003}, two seeds each."""
    out = tmp_path_factory.mktemp("results")
    rng = np.random.default_rng(0)
    settings = [("mnist5k", "qcfs", "mnist-cnn", T_LONG), ("mnist5k-dvs", "tet", "dvs-cnn", 6)]
    for (dataset, method, arch, T), alpha, seed in [
        (s, a, seed) for s in settings for a in (0.0, 0.003) for seed in (0, 1)
    ]:
        config = {"dataset": dataset, "method": method, "arch": arch, "alpha": alpha,
                  "seed": seed, "T": T, "L": 8, "out_dir": str(out), "profile": "fab"}  # fmt: skip
        fabricate(Config.from_dict(config), rng, n_test=100, n_calib=60)
    return select_runs(out / "fab")[0]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def major_xticks(ax) -> list[float]:
    low, high = ax.get_xlim()
    return [t for t in ax.get_xticks() if low <= t <= high]


def offscale_markers(ax) -> int:
    """The points drawn on the bottom edge as ▼ (figures.mark_offscale)."""
    bottom = ax.get_ylim()[0]
    count = 0
    for c in ax.collections:
        xy = c.get_offsets()
        if len(xy) and not c.get_clip_on() and np.allclose(np.asarray(xy)[:, 1], bottom):
            count += len(xy)
    return count


@pytest.mark.parametrize("t_max", [1, 4, 8, 10, 11, 16, 32, 64, 100, 128, 1000])
def test_timestep_ticks_start_at_one_and_stay_readable(t_max):
    ticks = figures.timestep_ticks(t_max)
    assert ticks[0] == 1 and ticks == sorted(set(ticks)) and ticks[-1] <= t_max
    assert len(ticks) <= MOST_TICKS
    steps = np.diff(ticks[1:])
    assert len(set(steps)) <= 1  # evenly spaced after t = 1
    assert t_max - ticks[-1] < (steps[0] if len(steps) else t_max)  # nothing left unlabelled


def test_titles_name_the_setting_in_words_with_T_max_and_L():
    def runs(**config):
        return [{"config": Config.from_dict({"L": 8, **config}).to_dict()}]

    qcfs = runs(dataset="mnist5k", method="qcfs", T=32)
    assert figures.setting_title(qcfs) == "MNIST-5k, QCFS conversion (L = 8, T_max = 32)"
    tet = runs(dataset="mnist5k-dvs", method="tet", arch="dvs-cnn", T=6)
    title = "MNIST-5k, emulated DVS, TET direct training: exits (T_max = 6)"
    assert figures.setting_title(tet, "exits") == title
    assert figures.dataset_name("mnist5k (partial)") == "MNIST-5k (partial)"


@pytest.mark.slow  # fabricated records (about 40 s on a loaded 2-core machine), then draws
def test_exits_label_a_readable_number_of_timesteps(runs):
    fig = figures.exit_distributions(runs, "mnist5k", "qcfs")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 2
    for ax in panels:
        ticks = major_xticks(ax)
        assert 1 in ticks and T_LONG in ticks and len(ticks) <= MOST_TICKS
    assert "%" in panels[0].get_ylabel()
    assert "T_max = 32" in fig._suptitle.get_text() and "L = 8" in fig._suptitle.get_text()


@pytest.mark.slow  # fabricated records (about 40 s on a loaded 2-core machine), then draws
@pytest.mark.parametrize("dataset, method", [("mnist5k", "qcfs"), ("mnist5k-dvs", "tet")])
def test_tradeoff_draws_the_oracle_on_top_and_marks_the_operating_point(runs, dataset, method):
    sel = [r for r in runs if (r["config"]["dataset"], r["config"]["method"]) == (dataset, method)]
    fig = figures.tradeoff(runs, dataset, method)
    panels = [ax for ax in fig.axes if ax.get_title().startswith("RCS weight")]
    assert len(panels) == 2
    expected = figures.operating_points(sel)
    for ax, alpha in zip(panels, (0.0, 0.003), strict=True):
        marks = [*ax.lines, *ax.collections]
        oracle = [a for a in marks if a.get_gid() == "oracle"]
        point = [a for a in marks if a.get_gid() == "operating-point"]
        assert len(oracle) == 1 and len(point) == 1
        assert all(oracle[0].get_zorder() > a.get_zorder() for a in marks if a is not oracle[0])
        mean = expected[expected["alpha"] == alpha].iloc[0]
        chosen = [
            np.mean([r["metrics"][k] for r in sel if r["config"]["alpha"] == alpha])
            for k in ("topk_avg_timestep", "topk_accuracy")
        ]
        drawn = np.asarray(point[0].get_offsets()[0]).tolist()
        assert drawn == pytest.approx([chosen[0], 100 * chosen[1]])
        assert drawn == pytest.approx(mean[["avg_timestep", "accuracy"]].tolist())
        assert ax.get_ylim()[1] > 1  # in %, not a fraction
        assert len(major_xticks(ax)) <= MOST_TICKS
    assert panels[0].get_ylabel() == "test accuracy (%)"
    title = fig._suptitle.get_text()
    assert "T_max = " in title and ("L = 8" in title) == (method == "qcfs")
    # Every seed mean below a panel's axis is drawn on its edge, and the note counts exactly
    # those, per α, with the axis's lower limit.
    note = " ".join(t.get_text() for t in fig.texts)
    assert "near chance" not in note
    for ax, alpha in zip(panels, (0.0, 0.003), strict=True):
        drawn, bottom = offscale_markers(ax), ax.get_ylim()[0]
        said = f"α = {alpha:g}: ▼ on the bottom edge: {drawn} point(s) below {bottom:.1f} %"
        assert (said in note) == (drawn > 0) and (f"α = {alpha:g}:" in note) == (drawn > 0)


@pytest.mark.slow  # fabricated records (about 40 s on a loaded 2-core machine), then draws
def test_accuracy_vs_timestep_is_in_percent_with_the_operating_point(runs):
    fig = figures.accuracy_vs_timestep(runs, "mnist5k", "qcfs")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "test accuracy (%)"
    assert "T_max = 32" in ax.get_title() and "L = 8" in ax.get_title()
    assert [c for c in ax.collections if c.get_gid() == "operating-point"]
    assert len(major_xticks(ax)) <= MOST_TICKS


@pytest.mark.slow  # fabricated records (about 40 s on a loaded 2-core machine), then draws
def test_convergence_shows_every_early_step_on_the_axis_or_on_its_edge(runs):
    fig = convergence.figure(runs, "mnist5k")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "test accuracy (%)"
    assert "L = 8" in ax.get_title() and "T_max = 32" in ax.get_title()
    assert len(major_xticks(ax)) <= MOST_TICKS
    curves = [r["per_timestep"].assign(alpha=r["config"]["alpha"]) for r in runs
              if r["config"]["method"] == "qcfs"]  # fmt: skip
    means = 100 * pd.concat(curves).groupby(["alpha", "timestep"])["accuracy"].mean()
    below = int((means < ax.get_ylim()[0]).sum())
    assert below > 0  # the fabricated curves start far below their end
    assert offscale_markers(ax) == below
    note = " ".join(t.get_text() for t in ax.texts)
    assert f"▼ on the bottom edge: {below} point(s) below {ax.get_ylim()[0]:.1f} %" in note


@pytest.mark.slow  # fabricated records (about 40 s on a loaded 2-core machine), then draws
def test_regulariser_differences_of_accuracies_are_in_points(runs):
    table = study.paired_table(runs, n_boot=200, log=lambda *_: None)
    fig = study.figure(table)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    for metric in study.METRICS:
        ylabel = panels[metric.label].get_ylabel()
        assert ("(pt)" in ylabel) == metric.name.startswith(("accuracy", "topk_accuracy"))
        assert ("(steps)" in ylabel) == (metric.name in ("oct_mean", "topk_avg_timestep"))
    row = table[(table["metric"] == "accuracy_tmax")].sort_values("dataset")
    ax = panels["accuracy at T_max"]
    drawn = sorted(float(bars.lines[0].get_ydata()[0]) for bars in ax.containers)
    assert drawn == pytest.approx(sorted(100 * row["difference"]))
    legend = fig.legends[0]
    assert any("T_max = 32" in t.get_text() for t in legend.get_texts())
