"""audionets serve in a real browser: headless Chromium, driven by selenium through the system
chromedriver, against ``audionets serve`` started by this module on a free port.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); without them
the module is skipped.
"""

import io
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                       reason="needs Debian's chromium and chromium-driver "
                              "(apt-get install -y chromium chromium-driver)"),
]
MAX_UPLOAD_MB = 1


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def server(tmp):
    """``(url, process, its TMPDIR)`` of a server on a free port (``--port 0``)."""
    temp = tmp / "server-tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "audionets", "serve", "--port", "0",
         "--max-upload-mb", str(MAX_UPLOAD_MB), "--max-seconds", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    line = ""
    while not line and time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
    if not line.startswith("audionets serve: http://127.0.0.1:"):
        proc.kill()
        pytest.fail(f"the server did not start: {line!r} {proc.stderr.read()[-2000:]}")
    yield line.split()[2], proc, temp
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="audionets-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1000,1300",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def upload(browser, url: str, task: str, path: Path) -> str:
    """Open the page, pick ``path`` in the ``task`` tab, wait for the end; the panel's state."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    browser.find_element(By.ID, f"tab-{task}").click()
    browser.find_element(By.ID, f"{task}-input").send_keys(str(path))
    panel = browser.find_element(By.ID, task)
    WebDriverWait(browser, 300, poll_frequency=0.2).until(
        lambda _: panel.get_attribute("data-state") in ("done", "error"))
    return panel.get_attribute("data-state")


PLAY = """
const audio = arguments[0], done = arguments[arguments.length - 1];
audio.muted = true;
audio.addEventListener("timeupdate", () => {
  if (audio.currentTime > 0) { audio.pause(); done({duration: audio.duration, error: null}); }
});
audio.addEventListener("error", () => done({duration: null, error: audio.error.code}));
audio.play().catch((err) => done({duration: null, error: String(err)}));
"""


def page_errors(browser) -> list:
    """Console errors other than failed requests (a 422 answer is logged as one)."""
    return [entry for entry in browser.get_log("browser")
            if entry["level"] == "SEVERE" and entry.get("source") != "network"]


def test_the_page_separates_a_mixture_into_two_playable_sources(server, browser, tmp):
    from selenium.webdriver.common.by import By

    from audionets import metrics
    from audionets.cli.demo import test_mixture
    from audionets.inference import Separator

    url, _, _ = server
    item = test_mixture(Separator.from_pretrained("sepformer-synth-2spk"), 0)
    mix, references = item["mix"], item["sources"]  # [T], [2, T] at 8 kHz
    path = tmp / "two talkers.wav"
    sf.write(str(path), mix.numpy(), 8000, subtype="FLOAT")

    assert upload(browser, url, "separate", path) == "done"
    sources = browser.find_elements(By.CSS_SELECTOR, "#separate-results .source")
    assert len(sources) == 2
    estimates = []
    for article in sources:
        player = article.find_element(By.TAG_NAME, "audio")
        played = browser.execute_async_script(PLAY, player)
        assert played["error"] is None and played["duration"] == pytest.approx(
            mix.shape[-1] / 8000, abs=1e-3)
        with urllib.request.urlopen(player.get_attribute("src")) as response:
            data, rate = sf.read(io.BytesIO(response.read()), dtype="float32")
        assert rate == 8000 and data.shape == mix.shape
        estimates.append(torch.from_numpy(data))
        link = article.find_element(By.CSS_SELECTOR, "a.download")
        assert link.get_attribute("href") == player.get_attribute("src") + "?download=1"
        picture = article.find_element(By.TAG_NAME, "img")
        assert browser.execute_script("return arguments[0].naturalWidth", picture) == 800
    mixture = browser.find_element(By.CSS_SELECTOR, "#separate-results .mixture audio")
    assert browser.execute_async_script(PLAY, mixture)["error"] is None
    assert browser.find_element(By.ID, "separate-results").is_displayed()
    name = browser.find_element(By.CSS_SELECTOR, "#separate-results .name")
    assert name.text == path.name
    assert not browser.find_element(By.ID, "classify").is_displayed()

    estimates = torch.stack(estimates)
    _, perm = metrics.pit(metrics.pairwise_neg_si_snr, estimates[None], references[None])
    ordered = metrics.reorder(estimates[None], perm)[0]
    improvement = metrics.si_snr_improvement(ordered, references, mix)
    assert improvement.min() > 5.0, improvement  # the model's card: 9.7 dB on this mixture
    assert page_errors(browser) == []


@pytest.mark.parametrize("name, make, message", [
    ("notes.wav", lambda p: p.write_text("not audio\n" * 100),
     "notes.wav: not a readable audio file (corrupt or unsupported format)"),
    ("broken.wav", lambda p: sf.write(str(p), np.r_[np.zeros(800), np.nan, np.zeros(99)], 8000,
                                      subtype="FLOAT"),
     "broken.wav: contains NaN or Inf samples at t=0.100s; repair or drop the file"),
    ("long.wav", lambda p: sf.write(str(p), np.zeros(8000 * 31, np.int16), 8000),
     "long.wav: 31.0 s long, more than this server's limit of 30 s"),
    ("big.wav", lambda p: sf.write(str(p), np.zeros(8000 * 40, np.float32), 8000,  # 1.3 MB
                                   subtype="FLOAT"),
     f"big.wav: larger than this server's upload limit of {MAX_UPLOAD_MB} MB"),
])
def test_a_bad_file_shows_its_message(server, browser, tmp, name, make, message):
    from selenium.webdriver.common.by import By

    url, _, _ = server
    path = tmp / name
    make(path)
    assert upload(browser, url, "separate", path) == "error"
    shown = browser.find_element(By.ID, "separate-error")
    assert shown.is_displayed() and shown.text.startswith(message)
    assert "Traceback" not in shown.text and "/tmp" not in shown.text
    assert not browser.find_element(By.ID, "separate-results").is_displayed()
    assert page_errors(browser) == []


def test_silence_shows_a_warning_with_its_results(server, browser, tmp):
    from selenium.webdriver.common.by import By

    path = tmp / "quiet.wav"
    sf.write(str(path), np.zeros(4000, np.float32), 8000)
    assert upload(browser, server[0], "separate", path) == "done"
    warning = browser.find_element(By.ID, "separate-warnings")
    assert warning.is_displayed()
    assert warning.text.startswith("quiet.wav: input is silent (all samples are zero)")


def test_the_classify_tab_shows_the_top_labels(server, browser, tmp):
    from selenium.webdriver.common.by import By

    import audionets.data  # noqa: F401  (registers the datasets)
    from audionets.inference import Classifier
    from audionets.registry import DATASETS

    classifier = Classifier.from_pretrained("cnn-synth-events")
    item = DATASETS.build("synth_events", split="test", sample_rate=16000,
                          segment_seconds=1.0)[0]
    path = tmp / "event.wav"
    sf.write(str(path), item["wav"].numpy(), 16000, subtype="FLOAT")
    assert upload(browser, server[0], "classify", path) == "done"
    shown = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#classify-results li")]
    expected = classifier.classify_file(path, top_k=5)
    assert shown == [f"{label} ({100 * p:.1f} %)" for label, p in expected]
    assert expected[0][0] == classifier.labels[int(item["label"])]


def test_stopping_the_server_removes_its_files(server):
    _, proc, temp = server
    assert [p.name.startswith("audionets-serve-") for p in temp.iterdir()] == [True]
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert list(temp.iterdir()) == []
