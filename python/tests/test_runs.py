"""tessera_runs on run folders the real binary wrote (conftest.py)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

import tessera_runs as tr

REPO = Path(__file__).resolve().parents[2]


def test_scalars_are_tidy_with_seed_and_the_settings_that_differ(folders):
    run = tr.Run(folders / "runs/lr-0.05")
    assert run.schema_version == "2.2" and run.experiment == "quickstart"
    frame = run.scalars()
    assert list(frame.columns[:5]) == ["run", "variant", "base", "seed", "sampler.use"]
    assert set(frame.seed) == {7, 8, 9} and set(frame.base) == {"sequential", "full-shuffle"}
    acc = frame[(frame.role == "engine") & (frame.scalar == "final_test_accuracy")]
    assert len(acc) == 6 and acc.value.between(0, 1).all()
    results = json.loads((folders / "runs/lr-0.05/results.json").read_text())
    first = results["variants"][0]
    expected = first["results"]["engine"]["scalars"]["final_test_accuracy"]
    assert acc[acc.variant == first["name"]].value.item() == expected, "the value as results.json has it"


def test_two_runs_load_as_one_table_with_the_step_size_as_a_column(folders):
    runs = tr.load([folders / "runs/lr-0.05", folders / "runs/lr-0.01"])
    assert runs.differing() == ["sampler.use", "train.lr"]
    frame = runs.scalars()
    assert set(frame["train.lr"]) == {0.05, 0.01}
    means = frame[frame.scalar == "final_test_accuracy"].groupby(["train.lr", "base"]).value.mean()
    assert len(means) == 4


def test_curves_know_step_epoch_and_examples_seen(folders):
    curves = tr.Run(folders / "runs/lr-0.05").curves(role="engine", series="test_accuracy")
    assert {"step", "epoch", "examples_seen", "value"} <= set(curves.columns)
    one = curves[curves.variant == "full-shuffle@7"].sort_values("step")
    assert one.epoch.iloc[-1] == pytest.approx(2.0) and one.step.is_monotonic_increasing
    assert (one.examples_seen.diff().dropna() > 0).all()
    by_step = tr.Run(folders / "runs/lr-0.05").curves(role="baselines.accuracy", series="test_accuracy")
    assert by_step.epoch.notna().all(), "a metric's curve over steps gets its epochs from the checkpoints"
    with pytest.raises(KeyError, match="engine/test_accuracy"):
        tr.Run(folders / "runs/lr-0.05").curves(series="test_acuracy")


def test_tables_config_and_system(folders):
    run = tr.Run(folders / "runs/lr-0.05")
    io = run.tables("io_per_epoch")
    assert len(io) == 6 * 2 and {"variant", "seed", "epoch", "requests"} <= set(io.columns)
    config = run.config()
    assert len(config) == 6 and (config["train.lr"] == 0.05).all() and (config["status"] == "ok").all()
    assert config["metric[0].use"].eq("baselines.accuracy").all()
    system = run.system
    assert system["cores"] >= 1 and system["cpu"] and system["commit"] and system["libtorch"]
    with pytest.raises(KeyError, match="io_per_epoch"):
        run.tables("io_per_epcoh")


def test_a_population_s_members_and_matrices(folders):
    run = tr.Run(folders / "runs/population")
    population = run.population("digits")
    members = population.members
    assert {"model", "seed", "step", "accuracy.test"} <= set(members.columns)
    predictions = population.matrices["test.predictions"]
    assert isinstance(predictions, np.memmap) and predictions.shape[0] == len(members)
    labels = population.matrices["test.labels"]
    correct = population.matrices["test.correct"]
    assert np.array_equal(np.asarray(correct, dtype=bool), np.asarray(predictions) == np.asarray(labels)[None, :])
    arrays = run.arrays("pointwise-profiles.neg-subset", "halving_subsets")
    assert list(arrays) == ["digits"] and arrays["digits"].ndim >= 1
    with pytest.raises(KeyError, match="no population"):
        run.population("mnist1d")


def test_a_graph_run_reads_too(folders):
    frame = tr.Run(folders / "runs/graph").scalars()
    assert set(frame.base) == {"degree", "random"} and set(frame.seed) == {1, 2}
    assert (frame.role == "objective").any()


def test_an_unknown_major_schema_is_refused_with_what_to_do(folders, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(folders / "runs/lr-0.05", copy)
    results = json.loads((copy / "results.json").read_text())
    results["schema_version"] = "3.0"
    (copy / "results.json").write_text(json.dumps(results))
    with pytest.raises(tr.SchemaError, match=r"schema version 3.0.*reads major versions 1, 2"):
        tr.Run(copy)


def test_an_array_path_that_leaves_the_folder_is_refused(folders, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(folders / "runs/population", copy)
    results = json.loads((copy / "results.json").read_text())
    role = results["variants"][0]["results"]["pointwise-profiles.neg-subset"]
    role["arrays"] = ["../../etc/passwd--halving_subsets.npy"]
    (copy / "results.json").write_text(json.dumps(results))
    with pytest.raises(tr.RunFolderError, match="leaves the run folder"):
        tr.Run(copy).arrays("pointwise-profiles.neg-subset", "halving_subsets")


def test_a_run_opens_in_tensorboard(folders, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tr.Run(folders / "runs/lr-0.05")
    files = tr.to_tensorboard(run, tmp_path / "tb")
    assert len(files) == 6
    events = EventAccumulator(str(files[0].parent))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "engine/test_accuracy" in tags and "final/engine/final_test_accuracy" in tags
    curve = run.curves(role="engine", series="test_accuracy")
    curve = curve[curve.variant == files[0].parent.name].sort_values("step")
    read = events.Scalars("engine/test_accuracy")
    assert [e.step for e in read] == [int(s) for s in curve.step]
    assert [e.value for e in read] == pytest.approx(list(curve.value), rel=1e-6), "float32 in the event file"
    assert not math.isnan(events.Scalars("final/engine/final_test_accuracy")[0].value)


def test_file_names_follow_tessera_s():
    from tessera_runs.names import file_stem_safe

    assert file_stem_safe("probe[size=10]@2") == "probe_size_10__2"
    assert file_stem_safe(".hidden") == "_.hidden" and file_stem_safe("") == "_"
    assert tr.base_name("probe[size=10]@2") == "probe[size=10]" and tr.seed_of("probe[size=10]@2") == 2


def test_crc32c_matches_the_standard_check_value():
    from tessera_runs.tensorboard import crc32c

    assert crc32c(b"123456789") == 0xE3069283


def test_every_results_json_matches_the_published_schema(folders):
    import jsonschema

    schema = json.loads((REPO / "docs/book/src/results.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    for run in ["lr-0.05", "lr-0.01", "population", "graph"]:
        results = json.loads((folders / "runs" / run / "results.json").read_text())
        jsonschema.validate(results, schema)
    bad = json.loads((folders / "runs/lr-0.05/results.json").read_text())
    bad["variants"][0]["status"] = "done"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_an_entry_that_pools_seeds_names_its_runs_and_has_their_matrices(folders):
    run = tr.Run(folders / "runs/pooled")
    assert run.pooled() == {"mlp+seeds": ["mlp@4", "mlp@2"]}
    population = run.population("mlp+seeds")
    assert list(population.members.seed) == [4, 2]
    correct = population.matrices["test.correct"]
    assert correct.shape[0] == 2
    frame = run.scalars()
    members = frame[(frame.variant == "mlp+seeds") & (frame.role == "pointwise-profiles.profile") & (frame.scalar == "members")]
    assert members.value.item() == 2 and math.isnan(members.seed.astype(float).item())
