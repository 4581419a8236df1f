"""recipes/tts_mix/pitch_breakdown.py: a separation evaluation's SI-SNRi by the F0 distance of
the two talkers, on a pool manifest of known pitches."""

from __future__ import annotations

import csv

from tests import recipe_scripts

#: utterance -> F0 in Hz: u1 is half a semitone above u0, u2 three, u3 an octave
PITCHES = {"u0": 110.0, "u1": 110.0 * 2 ** (0.5 / 12), "u2": 110.0 * 2 ** (3 / 12), "u3": 220.0}


def _pool(root, columns=("id", "path", "split", "f0_hz")):
    with open(root / "manifest.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        for name, f0 in PITCHES.items():
            writer.writerow([name, f"wav/{name}.wav", "test", f0][:len(columns)])


def _rows(path, rows):
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["id", "si_snri"])
        writer.writeheader()
        writer.writerows({"id": i, "si_snri": v} for i, v in rows)


def test_mixtures_are_binned_by_the_f0_distance_of_their_talkers(tmp_path, capsys):
    script = recipe_scripts.load("tts_mix", "pitch_breakdown")
    _pool(tmp_path)
    rows = [("u0_u1", "2.0"), ("u0_u2", "6.0"), ("u0_u3", "12.0"), ("u1_u3", "14.0"),
            ("u0_builtin-000003", "9.0"), ("u2_u3", "")]
    _rows(tmp_path / "rows.csv", rows)
    assert script.main([str(tmp_path / "rows.csv"), "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    table = {line.split()[0]: line.split()[1:] for line in out[1:-1]}
    assert table == {"0-1": ["1", "2.00", "2.00", "100%"], "2-4": ["1", "6.00", "6.00", "0%"],
                     ">=8": ["2", "13.00", "13.00", "0%"]}
    assert out[-1].startswith("left out: 2 mixtures")


def test_a_csv_of_another_kind_is_one_line_and_exit_1(tmp_path, capsys):
    script = recipe_scripts.load("tts_mix", "pitch_breakdown")
    (tmp_path / "rows.csv").write_text("id,accuracy\nx,1\n")
    assert script.main([str(tmp_path / "rows.csv"), "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not the --out CSV of a separation evaluation" in err[0]
    assert script.main([str(tmp_path / "missing.csv"), "--root", str(tmp_path)]) == 1
    assert "missing.csv" in capsys.readouterr().err


def test_a_pool_without_the_f0_column_says_how_to_add_it(tmp_path, capsys):
    script = recipe_scripts.load("tts_mix", "pitch_breakdown")
    _pool(tmp_path, columns=("id", "path", "split"))
    _rows(tmp_path / "rows.csv", [("u0_u1", "2.0")])
    assert script.main([str(tmp_path / "rows.csv"), "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"add it with audionets prepare-tts-mix {tmp_path}" in err[0]
