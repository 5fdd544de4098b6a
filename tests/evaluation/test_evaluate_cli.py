"""``firereg evaluate`` end to end on synthetic data, its refusals, and ``firereg demo``'s options."""

import base64
import csv
import json
import re

import pytest
import yaml

from firereg.cli.main import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def experiment_file(tmp_path, brain_experiment, tiny_model_run):
    data = brain_experiment(
        model=str(tiny_model_run), methods=["unaligned", "ants_affine", "fire_affine", "fire"],
        ants={"affine": {"aff_iterations": [5, 5], "aff_shrink_factors": [2, 1],
                         "aff_smoothing_sigmas": [1, 0]}})
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_evaluate_writes_the_tables_the_cases_and_a_self_contained_report(tmp_path, experiment_file, capsys):
    pytest.importorskip("ants")
    out = tmp_path / "out"
    code = main(["evaluate", "--config", str(experiment_file), "--out", str(out), "--no-progress",
                 "--max-images", "1", "--transforms", "2"])
    printed = capsys.readouterr().out
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["cases.json", "report.html", "results.csv", "results.md"]
    assert "2 pairs: 1 of the 3 2D test slices x 2 random transforms" in printed

    markdown = (out / "results.md").read_text()
    assert "| structure | unaligned | ANTs-affine | FIRE-affine | FIRE |" in markdown
    for row in ("brain stem", "cerebellum", "white matter", "mean"):
        assert re.search(rf"^\| {row} \|( [0-9.]+ \([0-9.]+\) \|){{4}}$", markdown, re.MULTILINE), row
    assert "| affine |" in markdown and "| non-rigid |" in markdown and "SYNTHETIC" in markdown

    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {r["column"] for r in rows if r["table"] == "dice"} == {"unaligned", "ANTs-affine", "FIRE-affine",
                                                                   "FIRE"}
    assert all(r["n"] == "2" for r in rows if r["table"] == "dice" and r["row"] == "mean")

    cases = json.loads((out / "cases.json").read_text())
    assert [c["id"] for c in cases["cases"]] == ["spm_avg152_k002/t00/seed5", "spm_avg152_k002/t01/seed5"]
    for case in cases["cases"]:
        assert set(case["methods"]) == {"unaligned", "ants_affine", "fire_affine", "fire"}
        assert case["methods"]["ants_affine"]["inverse_consistency_mm"] is None
        assert set(case["methods"]["fire"]["dice"]) == {"brain stem", "cerebellum", "white matter"}
    assert cases["settings"]["ants_affine"]["aff_iterations"] == [5, 5]
    assert cases["settings"]["fire"]["spacing_mm"] == 2.0
    assert cases["machine"]["cpu"] and cases["machine"]["torch"] and "torch_threads" in cases["machine"]
    assert cases["data"]["synthetic_images"] is True
    assert cases["experiment"]["protocol"]["transforms_per_image"] == 2

    report = (out / "report.html").read_text()
    sources = re.findall(r"<img [^>]*src='([^']*)'", report)
    assert len(sources) == len(re.findall(r"<img ", report)) == 2  # box plot, example case
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(PNG_SIGNATURE)
    assert "synthetic" in report.lower() and "<table>" in report


def test_evaluate_refuses_a_used_folder_without_overwrite(tmp_path, experiment_file, capsys):
    out = tmp_path / "used"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["evaluate", "--config", str(experiment_file), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not empty" in err and "--overwrite" in err


def test_evaluate_refuses_a_model_that_is_not_shipped_naming_it(tmp_path, capsys):
    from pathlib import Path

    import yaml

    config = Path(__file__).resolve().parents[2] / "configs" / "experiments" / "cardiac_2d_es_ed.yaml"
    data = yaml.safe_load(config.read_text())
    data["model"] = "cine-3d"
    missing = tmp_path / "missing_model.yaml"
    missing.write_text(yaml.safe_dump(data))
    assert main(["evaluate", "--config", str(missing), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("firereg evaluate: error:")
    assert "'cine-3d' is not shipped" in err and not (tmp_path / "o").exists()


def test_evaluate_refuses_bad_overrides_and_unknown_keys(tmp_path, experiment_file, capsys):
    assert main(["evaluate", "--config", str(experiment_file), "--out", str(tmp_path / "a"),
                 "--transforms", "0"]) == 2
    assert "--transforms must be a finite number in [1, 100000], got 0" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(experiment_file.read_text() + "speed: fast\n")
    assert main(["evaluate", "--config", str(bad), "--out", str(tmp_path / "b")]) == 2
    assert "unknown key(s) ['speed']" in capsys.readouterr().err


def test_demo_options_of_the_synthetic_demo_need_synthetic(capsys):
    assert main(["demo", "--size", "24", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert "--size only apply to the synthetic demo; add --synthetic" in err
    assert main(["demo", "--synthetic", "--size", "10", "--out", "unused"]) == 2
    assert "multiple of 4" in capsys.readouterr().err


def test_the_demo_prepares_only_the_spm_dataset(monkeypatch, tmp_path):
    from firereg.data.sources import prepare
    from firereg.demo.brain_demo import prepare_demo_data

    built = []

    def fake(name):
        def build(cache, *, force=False, progress=True):
            folder = tmp_path / "datasets" / name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "done.json").write_text(json.dumps({"summary": {}}))
            built.append(name)
            return folder

        return (build, lambda cache: tmp_path / "datasets" / name, lambda: {"dataset": name})

    for name in list(prepare.DATASETS):
        monkeypatch.setitem(prepare.DATASETS, name, fake(name))
    monkeypatch.setenv("FIREREG_CACHE", str(tmp_path))
    assert prepare_demo_data(progress=False) == tmp_path / "datasets" / "spm_avg152"
    assert built == ["spm_avg152"]
    with pytest.raises(ValueError, match="only must name datasets"):
        prepare.prepare_data(tmp_path, only=["mnist"], progress=False)
