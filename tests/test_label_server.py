"""The MONAI Label app end to end: a real server in MONAI Label's own virtual environment, on 127.0.0.1.

A small datastore (synthetic SIIM DICOMs, PNG and JPG copies, a few masks as labels) and tiny pre-trained
models; one classification and one segmentation bundle. The server runs in its own process group and is
stopped in the fixture's teardown whatever happens; every wait has a deadline.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_mlip.bundle import synthetic_dataset
from monai_mlip.data import build_siim_manifest, read_cxr, rle_union
from monai_mlip.label import bundle_kind, create_app_folder, find_bundles

LABEL_PYTHON = os.environ.get("MONAI_MLIP_LABEL_PYTHON")
REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT = 300  # s: imports and two networks built, on two busy cores
REQUEST_TIMEOUT = 120
TRAIN_TIMEOUT = 300

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not LABEL_PYTHON,
        reason="MONAI_MLIP_LABEL_PYTHON (the python of MONAI Label's virtual environment, README 'Fine-tune in "
        "MONAI Label') is not set; .ci/run sets it",
    ),
]

BUNDLES = find_bundles(REPO / "bundles")
CLASSIFICATION = next(name for name in BUNDLES if bundle_kind(name) == "classification")
SEGMENTATION = next(name for name in BUNDLES if bundle_kind(name) == "segmentation")


def _multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body (``files``: form name -> (file name, content)) and its content type."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()]
    parts = [part.encode() for part in parts]
    for name, (filename, content) in files.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        parts.append(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _call(
    url: str,
    method: str = "GET",
    fields: dict[str, str] | None = None,
    files: dict[str, tuple[str, bytes]] | None = None,
    json_body: dict | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> bytes:
    """One HTTP request; the response body (an HTTP error fails the test with the server's answer)."""
    headers, body = {}, None
    if json_body is not None:
        body, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
    elif fields is not None or files is not None:
        body, headers["Content-Type"] = _multipart(fields or {}, files or {})
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as err:
        pytest.fail(f"{method} {url}: HTTP {err.code}: {err.read()[:2000]!r}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Server:
    """A running app: its base URL and its app folder (``model/<name>/models/model.pt`` are the served weights)."""

    url: str
    app: Path

    def weights_digest(self, model: str) -> str:
        return hashlib.sha256((self.app / "model" / model / "models" / "model.pt").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    """A local datastore: 4 DICOMs, a PNG (cropped to 48x64) and a JPG; the DICOMs' masks as final labels."""
    root = tmp_path_factory.mktemp("label_data")
    dataset = synthetic_dataset("siim", n=6, seed=2, image_size=64, root=root)
    studies = root / "studies"
    (studies / "labels" / "final").mkdir(parents=True)
    items = sorted(build_siim_manifest(dataset, split="all", image_shape=None), key=lambda item: -item["label"])
    for index, item in enumerate(items):
        name = item["image_id"]
        pixels, _ = read_cxr(item["image"])
        if index < 4:
            shutil.copy(item["image"], studies / f"{name}.dcm")
            mask = rle_union(item["rle"].split("\n") if item["rle"] else [], pixels.shape, name)
            Image.fromarray(mask).save(studies / "labels" / "final" / f"{name}.png")
        elif index == 4:
            Image.fromarray((pixels * 255).astype(np.uint8)[:, :48]).save(studies / f"{name}.png")
        else:
            Image.fromarray((pixels * 255).astype(np.uint8)).save(studies / f"{name}.jpg")
    return studies


@pytest.fixture(scope="module")
def server(tmp_path_factory, studies, pretrained_model) -> Iterator[Server]:
    """The app on a free port of 127.0.0.1, serving one classification and one segmentation bundle."""
    root = tmp_path_factory.mktemp("label_app")
    app = create_app_folder(root / "app")
    port = _free_port()
    command = [
        LABEL_PYTHON,
        "-m",
        "monailabel.main",
        "start_server",
        *("--app", str(app), "--studies", str(studies)),
        *("--conf", "models", f"{CLASSIFICATION},{SEGMENTATION}"),
        *("--conf", "bundles", str(REPO / "bundles")),
        *("--conf", "pretrained_dir", str(pretrained_model[0])),
        *("--conf", "zoo_source", "local", "--conf", "sam2", "false"),
        *("--host", "127.0.0.1", "--port", str(port)),
    ]
    env = {**os.environ, "MONAI_MLIP_CACHE": str(root / "cache")}  # nothing may be generated: fail fast if it is
    log_path = root / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(f"{url}/info/"):
            if process.poll() is not None:
                pytest.fail(f"the server exited ({process.returncode}):\n{log_path.read_text()[-5000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer within {START_TIMEOUT} s:\n{log_path.read_text()[-5000:]}")
            time.sleep(0.5)
        yield Server(url, app)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _image_id(studies: Path, suffix: str) -> str:
    return next(path.name.removesuffix(suffix) for path in sorted(studies.glob(f"*{suffix}")))


def _infer(server: Server, model: str, output: str, image: str = "", upload: Path | None = None, **params) -> bytes:
    files = {"file": (upload.name, upload.read_bytes())} if upload else {}
    query = f"image={image}&" if image else ""
    fields = {"params": json.dumps({"device": "cpu", **params})}
    return _call(f"{server.url}/infer/{model}?{query}output={output}", "POST", fields=fields, files=files)


def _score(server: Server, image: str) -> float:
    (prediction,) = json.loads(_infer(server, CLASSIFICATION, "json", image=image))["prediction"]
    return prediction["score"]


def _train(server: Server, model: str) -> None:
    request = {"device": "cpu", "max_epochs": 1, "val_split": 0.5, "multi_gpu": False}
    _call(f"{server.url}/train/{model}?run_sync=true", "POST", json_body=request, timeout=TRAIN_TIMEOUT)


def test_info_lists_the_bundles_with_their_types(server):
    models = json.loads(_call(f"{server.url}/info/"))["models"]
    assert models.keys() == {CLASSIFICATION, SEGMENTATION}
    assert models[CLASSIFICATION]["type"] == "classification" and models[SEGMENTATION]["type"] == "segmentation"
    assert models[SEGMENTATION]["dimension"] == 2


def test_classification_of_an_uploaded_dicom(server, studies):
    dicom = next(iter(sorted(studies.glob("*.dcm"))))
    result = json.loads(_infer(server, CLASSIFICATION, "json", upload=dicom))
    (prediction,) = result["prediction"]
    assert prediction["label"] in CLASSIFICATION and 0 <= prediction["score"] <= 1


def test_segmentation_returns_2d_label_images_on_the_image_grid(server, studies):
    png = next(iter(sorted(studies.glob("*.png"))))
    mask = np.asarray(Image.open(BytesIO(_infer(server, SEGMENTATION, "image", upload=png))))
    assert mask.shape == (64, 48) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    nifti = _infer(server, SEGMENTATION, "image", image=_image_id(studies, ".jpg"), result_extension=".nii.gz")
    path = studies.parent / "mask.nii.gz"
    path.write_bytes(nifti)
    assert read_cxr(path)[0].shape == (64, 64)


def test_put_labels_train_and_infer_with_the_new_weights(server, studies):
    png, jpg, dicom = (_image_id(studies, suffix) for suffix in (".png", ".jpg", ".dcm"))
    predicted = _infer(server, SEGMENTATION, "image", image=png)  # the model's mask, accepted as the label
    for image, label in ((png, ("mask.png", predicted)), (jpg, ("label.json", b'{"label": 1}'))):
        answer = json.loads(
            _call(f"{server.url}/datastore/label?image={image}&tag=final", "PUT", files={"label": label})
        )
        assert answer["image"] == image
    assert len(json.loads(_call(f"{server.url}/datastore/?output=train"))) == 6

    before = server.weights_digest(CLASSIFICATION), _score(server, dicom)
    _train(server, CLASSIFICATION)
    after = server.weights_digest(CLASSIFICATION), _score(server, dicom)
    assert after[0] != before[0], "training did not write new weights"
    assert after[1] != before[1], "inference still answers with the old weights"

    weights = server.weights_digest(SEGMENTATION)
    _train(server, SEGMENTATION)
    assert server.weights_digest(SEGMENTATION) != weights
    mask = np.asarray(Image.open(BytesIO(_infer(server, SEGMENTATION, "image", image=png))))
    assert mask.shape == (64, 48) and set(np.unique(mask)) <= {0, 1}
