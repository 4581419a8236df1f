"""audionets serve: the JSON API with the framework's test client, the streaming upload limit,
the temporary folder's life, and the command line around the app (fast, tiny models)."""

import asyncio
import io
import time

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("fastapi", reason="the serve extra is not installed")
from fastapi.testclient import TestClient  # noqa: E402

import audionets.models  # noqa: F401, E402  (registers the models)
from audionets.cli import main  # noqa: E402
from audionets.cli.serve import listen, loopback_hosts  # noqa: E402
from audionets.errors import AudioError  # noqa: E402
from audionets.inference import Classifier, Separator  # noqa: E402
from audionets.registry import MODELS  # noqa: E402
from audionets.serve.app import Service, create_app  # noqa: E402
from audionets.serve.jobs import JobStore  # noqa: E402
from audionets.serve.uploads import UploadTooLarge, display_name, receive_file  # noqa: E402

RATE = 8000
LABELS = ["dog", "siren", "bird", "engine"]
SEPFORMER = dict(encoder_channels=16, d_model=16, chunk_size=20, num_blocks=1, intra_layers=1,
                 inter_layers=1, nhead=2, d_ffn=32)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    separator = Separator(MODELS.build("sepformer", **SEPFORMER), RATE, chunk_seconds=1.0,
                          overlap_seconds=0.25, source="tiny-sepformer")
    classifier = Classifier(MODELS.build("td_cnn", num_classes=len(LABELS), sample_rate=RATE,
                                         channels=[8, 8], kernel_sizes=[40, 3], strides=[4, 1],
                                         pool=4), RATE, LABELS, min_seconds=0.25,
                            window_seconds=1.0, source="tiny-cnn")
    return separator, classifier


@pytest.fixture()
def service(models):
    separator, classifier = models
    return Service(separator, classifier, max_upload_bytes=200_000, max_seconds=5.0, top_k=3,
                   store=JobStore(keep_jobs=2))


@pytest.fixture()
def client(service):
    with TestClient(create_app(service)) as client:
        yield client


def wav_bytes(samples: np.ndarray, rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples.astype(np.float32), rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def noise(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(round(seconds * rate)) * 0.1).astype(
        np.float32)


def wait(client, job_id: str) -> dict:
    """Poll a job until it ends (a bound on the polls, not a timing assertion)."""
    for _ in range(600):
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("done", "error"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end: {job}")


def post(client, task: str, content: bytes, name: str = "mix.wav"):
    return client.post(f"/api/{task}", files={"file": (name, content, "audio/wav")})


def test_page_and_info(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="separate-input"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    info = client.get("/api/info").json()
    assert info["separator"] == {"source": "tiny-sepformer", "sample_rate": RATE,
                                 "num_sources": 2}
    assert info["classifier"]["labels"] == 4
    assert info["max_upload_bytes"] == 200_000 and info["max_seconds"] == 5.0


def test_separation_returns_the_separator_file_outputs(client, service, models, tmp_path):
    mix = noise(2.3)  # 3 chunks of 1 s: the progress counts them
    response = post(client, "separate", wav_bytes(mix), name="meeting take 1.wav")
    assert response.status_code == 202
    job = wait(client, response.json()["job"])
    assert job["state"] == "done" and job["error"] is None and job["warnings"] == []
    assert job["progress"] == {"done": 3, "total": 3}
    result = job["result"]
    assert result["sample_rate"] == RATE and result["seconds"] == pytest.approx(2.3)

    reference = tmp_path / "mix.wav"
    sf.write(str(reference), mix, RATE, subtype="FLOAT")
    expected = [sf.read(str(p), dtype="float32")[0]
                for p in models[0].separate_file(reference, progress=False)]
    assert len(result["sources"]) == 2
    for k, (source, want) in enumerate(zip(result["sources"], expected), start=1):
        played = client.get(f"/api/files/{source['audio']}")
        assert played.status_code == 200 and played.headers["content-type"] == "audio/wav"
        assert "content-disposition" not in played.headers  # plays in the page
        got, rate = sf.read(io.BytesIO(played.content), dtype="float32")
        assert rate == RATE and got.shape == mix.shape
        np.testing.assert_array_equal(got, want)
        download = client.get(f"/api/files/{source['audio']}", params={"download": 1})
        assert download.headers["content-disposition"] == (
            f"attachment; filename*=utf-8''meeting%20take%201_s{k}.wav")
        picture = client.get(f"/api/files/{source['spectrogram']}")
        assert picture.headers["content-type"] == "image/png"
        assert picture.content.startswith(b"\x89PNG\r\n\x1a\n")
    mixture = client.get(f"/api/files/{result['mixture']['spectrogram']}")
    assert mixture.content.startswith(b"\x89PNG")
    # the upload itself is gone once its job ended; only results stay, under the store's root
    folder = service.store.root / job["id"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "mixture.png", "upload_s1.png", "upload_s1.wav", "upload_s2.png", "upload_s2.wav"]


def test_classification_returns_the_classifier_top_k(client, models, tmp_path):
    clip = noise(2.5, seed=3)  # three 1 s windows
    job = wait(client, post(client, "classify", wav_bytes(clip)).json()["job"])
    assert job["state"] == "done" and job["progress"] == {"done": 3, "total": 3}
    reference = tmp_path / "clip.wav"
    sf.write(str(reference), clip, RATE, subtype="FLOAT")
    expected = models[1].classify_file(reference, top_k=3)
    got = [(p["label"], p["probability"]) for p in job["result"]["predictions"]]
    assert [label for label, _ in got] == [label for label, _ in expected]
    assert [p for _, p in got] == pytest.approx([p for _, p in expected], rel=1e-6)


@pytest.mark.parametrize("task", ["separate", "classify"])
def test_not_audio_is_refused_with_the_client_file_name(client, service, task):
    response = post(client, task, b"this is not audio\n" * 50, name="notes.wav")
    assert response.status_code == 422
    message = response.json()["error"]
    assert message.startswith("notes.wav: not a readable audio file")
    assert str(service.store.root) not in message and "Traceback" not in message
    assert list(service.store.root.iterdir()) == []  # the refused upload is deleted


def test_too_long_audio_is_refused(client):
    response = post(client, "separate", wav_bytes(noise(6.0)), name="long.wav")
    assert response.status_code == 422
    assert response.json()["error"] == (
        "long.wav: 6.0 s long, more than this server's limit of 5 s; cut the file or restart "
        "the server with a larger --max-seconds")


@pytest.mark.parametrize("task", ["separate", "classify"])
def test_nan_samples_end_the_job_with_their_message(client, service, task):
    samples = noise(1.5)
    samples[9000] = np.nan
    job = wait(client, post(client, task, wav_bytes(samples), name="broken.wav").json()["job"])
    assert job["state"] == "error" and job["result"] is None
    assert job["error"].startswith("broken.wav: contains NaN or Inf samples at t=1.125s")
    assert not (service.store.root / job["id"] / "upload").exists()
    assert not list((service.store.root / job["id"]).glob("*.wav"))  # no partial output


@pytest.mark.parametrize("task", ["separate", "classify"])
def test_silence_is_processed_with_a_warning(client, task):
    job = wait(client, post(client, task, wav_bytes(np.zeros(RATE, np.float32)),
                            name="quiet.wav").json()["job"])
    assert job["state"] == "done"
    assert len(job["warnings"]) == 1
    assert job["warnings"][0].startswith("quiet.wav: input is silent (all samples are zero)")


def test_too_large_upload_is_refused(client, service):
    accepted = post(client, "separate", wav_bytes(noise(4.0)), name="big.wav")  # 128 kB + header
    assert accepted.status_code == 202  # under the 200 kB limit
    response = post(client, "separate", wav_bytes(noise(4.0)) * 2, name="big.wav")
    assert response.status_code == 413
    assert response.json()["error"] == (  # found while streaming: the file part is named
        "big.wav: larger than this server's upload limit of 0.190735 MB; cut or compress "
        "the file, or restart the server with a larger --max-upload-mb")
    declared = post(client, "separate", wav_bytes(noise(4.0)) * 3, name="big.wav")
    assert declared.status_code == 413  # its Content-Length says so before any byte is read
    assert declared.json()["error"].startswith("the upload: larger than this server's upload")
    assert [p.name for p in service.store.root.iterdir()] == [accepted.json()["job"]]


def stream(chunks, consumed):
    async def body():
        for chunk in chunks:
            consumed.append(len(chunk))
            yield chunk
    return body()


def multipart(content: bytes, name: str = "x.wav", field: str = "file") -> tuple[bytes, str]:
    boundary = "testboundary123"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"{name}\"\r\nContent-Type: audio/wav\r\n\r\n").encode()
    body += content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_upload_limit_stops_reading_the_body(tmp_path):
    body, kind = multipart(b"\x01" * 1_000_000)
    chunks = [body[i:i + 10_000] for i in range(0, len(body), 10_000)]
    consumed = []
    with pytest.raises(UploadTooLarge, match="x.wav: larger than this server's upload limit"):
        asyncio.run(receive_file(stream(chunks, consumed), kind, tmp_path / "up", 50_000))
    assert len(consumed) == 6  # the chunk that crossed 50 kB was the last one read
    assert (tmp_path / "up").stat().st_size <= 60_000


def test_upload_writes_exactly_the_file_part(tmp_path):
    content = bytes(range(256)) * 300 + b"\r\n--testboundar"  # looks like a boundary, is not
    body, kind = multipart(content, name="../../etc/my mix.wav")
    chunks = [body[i:i + 777] for i in range(0, len(body), 777)]
    name = asyncio.run(receive_file(stream(chunks, []), kind, tmp_path / "up", 1_000_000))
    assert name == "my mix.wav"
    assert (tmp_path / "up").read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["up"]


@pytest.mark.parametrize("body, kind, message", [
    (b"abc", "application/octet-stream", "must be multipart/form-data"),
    (multipart(b"abc", field="other")[0], multipart(b"")[1], "holds no file in the form field"),
    (multipart(b"a" * 1000)[0][:-40], multipart(b"")[1], "x.wav: the upload was cut short"),
])
def test_malformed_uploads(tmp_path, body, kind, message):
    with pytest.raises(AudioError, match=message):
        asyncio.run(receive_file(stream([body], []), kind, tmp_path / "up", 1_000_000))


@pytest.mark.parametrize("raw, shown", [
    (b"mix.wav", "mix.wav"), (b"C:\\Users\\me\\mix.wav", "mix.wav"), (b"../../x.flac", "x.flac"),
    (b"a\x00b\nc.wav", "abc.wav"), (b"", "upload"), (b"..", "upload"),
])
def test_display_name_keeps_only_a_printable_last_component(raw, shown):
    assert display_name(raw) == shown


def test_client_paths_never_reach_the_disk(client, service, tmp_path):
    name = str(tmp_path / "outside.wav")  # an absolute path as the file name
    job = wait(client, post(client, "separate", wav_bytes(noise(0.5)), name=name).json()["job"])
    assert job["name"] == "outside.wav" and job["state"] == "done"
    assert not (tmp_path / "outside.wav").exists() and not (tmp_path / "outside_s1.wav").exists()
    for unknown in ("../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "nope"):
        assert client.get(f"/api/files/{unknown}").status_code == 404
        assert client.get(f"/api/jobs/{unknown}").status_code == 404


def test_old_jobs_and_the_root_are_deleted(models):
    separator, classifier = models
    service = Service(separator, classifier, 200_000, 5.0, store=JobStore(keep_jobs=1))
    with TestClient(create_app(service)) as client:
        first = wait(client, post(client, "classify", wav_bytes(noise(0.5))).json()["job"])
        second = wait(client, post(client, "separate", wav_bytes(noise(0.5))).json()["job"])
        assert client.get(f"/api/jobs/{first['id']}").status_code == 404
        assert [p.name for p in service.store.root.iterdir()] == [second["id"]]
        audio_id = second["result"]["sources"][0]["audio"]
        assert client.get(f"/api/files/{audio_id}").status_code == 200
    assert not service.store.root.exists()  # the server stopped: nothing is left


def test_loopback_server_refuses_other_host_names(service):
    with TestClient(create_app(service, loopback_hosts("127.0.0.1")),
                    base_url="http://127.0.0.1") as client:
        assert client.get("/api/info").status_code == 200
        assert client.get("/api/info", headers={"host": "evil.example"}).status_code == 400
    assert loopback_hosts("0.0.0.0") is None and loopback_hosts("192.168.1.5") is None
    assert "localhost" in loopback_hosts("::1")


def test_missing_extra_names_the_install_command(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "uvicorn" else real(name, *a))
    assert main(["serve"]) == 1
    assert capsys.readouterr().err.strip() == (
        'audionets serve: error: the web page needs uvicorn; install them with pip install '
        '"audionets[serve]"')


def test_a_port_in_use_is_one_error_line(capsys):
    taken = listen("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port), "--model", "sepformer-synth-2spk"]) == 1
    finally:
        taken.close()
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"audionets serve: error: 127.0.0.1:{port}: cannot listen there")
    assert "\n" not in err


def test_a_full_queue_is_refused_and_the_store_stops_a_running_job(models):
    import threading

    separator, classifier = models
    service = Service(separator, classifier, 200_000, 5.0, store=JobStore(max_pending=1))
    started, chunks = threading.Event(), []

    def endless(job, progress):  # a job that reports progress until it is stopped
        started.set()
        while True:
            progress(len(chunks), 10**9)
            chunks.append(1)
            time.sleep(0.01)

    service.separate = endless
    with TestClient(create_app(service)) as client:
        first = post(client, "separate", wav_bytes(noise(0.5))).json()["job"]
        assert started.wait(60)
        busy = post(client, "separate", wav_bytes(noise(0.5)))
        assert busy.status_code == 503
        assert busy.json()["error"] == ("the server is busy (1 files waiting or running); try "
                                        "again when one has finished")
        assert client.get(f"/api/jobs/{first}").json()["state"] == "running"
        job = service.store.get(first)
    # leaving the client stops the app: the running job ends at its next progress report
    assert job.state == "error" and job.error == "the server is shutting down"
    assert not service.store.root.exists()


def test_spectrogram_input_is_the_channel_average_read_in_blocks(tmp_path):
    from audionets import audio
    from audionets.serve import figures

    data = np.random.default_rng(0).standard_normal((150_001, 3)).astype(np.float32) * 0.1
    path = tmp_path / "three.wav"
    sf.write(str(path), data, 16000, subtype="FLOAT")
    wav, rate = figures.read_mono(path)  # three blocks of 65536 frames, the last one short
    expected, _ = audio.load(path, mono=True)
    assert rate == 16000
    torch.testing.assert_close(wav, expected[0])
