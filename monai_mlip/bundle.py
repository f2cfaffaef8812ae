"""What the bundle configs call to prepare a run: the bundle folder, the cached synthetic data, the tiny text model;
and :func:`bundle_workflow`, which runs a bundle's configs from Python. (A trained run is rebuilt with
:func:`monai_mlip.networks.load_pretrained`.)

Each preparation happens on first use and is reused afterwards; each writes into a temporary folder and
renames it into place, so an interrupted preparation never leaves a half-written folder that a later run
would take for a finished one.
"""

from __future__ import annotations

import ast
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

__all__ = [
    "bundle_root",
    "bundle_workflow",
    "cache_dir",
    "ensure_text_model",
    "prepare_once",
    "pretrained_models_dir",
    "rank_zero_first",
    "run_bundle",
    "synthetic_dataset",
]

logger = logging.getLogger("monai_mlip")

T = TypeVar("T")


def _command_line_bundle(argv: Sequence[str]) -> Path | None:
    """The bundle folder of the first ``--config_file`` of a ``python -m monai.bundle run`` command line."""
    value = None
    for position, argument in enumerate(argv):
        if argument == "--config_file" and position + 1 < len(argv):
            value = argv[position + 1]
        elif argument.startswith("--config_file="):
            value = argument.split("=", 1)[1]
        if value is not None:
            break
    if not value:
        return None
    try:
        files = ast.literal_eval(value) if value.lstrip().startswith(("[", "(")) else value
    except (ValueError, SyntaxError):
        return None
    first = Path(str(files[0] if isinstance(files, (list, tuple)) and files else files))
    configs = first.expanduser().resolve().parent
    if configs.name == "configs" and (configs / "metadata.json").is_file():
        return configs.parent
    return None


def bundle_root(name: str) -> str:
    """The folder of the bundle ``name`` that this run reads its configs from.

    Resolved from the bundle, as model-zoo bundles are, so a bundle copied or unzipped anywhere runs from
    any working directory: the folder above the ``configs`` folder of the first ``--config_file`` of the
    ``python -m monai.bundle run`` command line. Without one (a config read from Python, which should pass
    ``bundle_root`` itself): ``bundles/<name>`` under the working directory, ``../<name>`` beside it, else
    the working directory. ``--bundle_root`` on the command line overrides all of this.
    """
    folder = _command_line_bundle(sys.argv)
    if folder is not None:
        return str(folder)
    for candidate in (Path("bundles") / name, Path("..") / name):
        if (candidate / "configs").is_dir():
            return str(candidate.resolve())
    return str(Path.cwd())


def pretrained_models_dir(bundle_root: str | os.PathLike) -> str:
    """Where a downstream bundle looks for the pre-trained encoder by default: ``mlip_pretrain/models``
    beside the bundle (the model-zoo layout of bundles in one folder), else under ``bundles/`` of the working
    directory. Pass ``--pretrained_dir`` to use any other run's ``models`` folder."""
    beside = Path(bundle_root).resolve().parent / "mlip_pretrain" / "models"
    if beside.is_dir():
        return str(beside)
    return str((Path("bundles") / "mlip_pretrain" / "models").resolve())


def bundle_workflow(
    configs_dir: str | os.PathLike, files: Sequence[str], bundle_root: str | os.PathLike, **overrides: object
):
    """An initialised MONAI ``ConfigWorkflow`` of a bundle's config files, the Python form of
    ``python -m monai.bundle run --config_file "[...]" --bundle_root ...``.

    Args:
        configs_dir: the bundle's ``configs`` folder (``metadata.json`` is read from it; no logging file).
        files: config file names, later ones overriding earlier ones; ``["train.json"]`` alone makes a
            ``train`` workflow (whose properties ``check_properties`` checks), anything else an ``infer`` one.
        bundle_root: where the run writes ``models/``, ``eval/`` and ``runs/``.
        overrides: config ids and their values.
    """
    from monai.bundle import ConfigWorkflow

    configs_dir = Path(configs_dir)
    workflow = ConfigWorkflow(
        config_file=[str(configs_dir / name) for name in files],
        meta_file=str(configs_dir / "metadata.json"),
        logging_file=False,
        workflow_type="train" if list(files) == ["train.json"] else "infer",
        bundle_root=str(bundle_root),
        **overrides,
    )
    workflow.initialize()
    return workflow


def run_bundle(
    configs_dir: str | os.PathLike, files: Sequence[str], bundle_root: str | os.PathLike, **overrides: object
):
    """Run a bundle's config files to the end (:func:`bundle_workflow`, ``run``, ``finalize``); returns the workflow."""
    workflow = bundle_workflow(configs_dir, files, bundle_root, **overrides)
    workflow.run()
    workflow.finalize()
    return workflow


def cache_dir() -> Path:
    """Where generated data is cached: ``$MONAI_MLIP_CACHE``, else ``~/.cache/monai_mlip``."""
    return Path(os.environ.get("MONAI_MLIP_CACHE", Path.home() / ".cache" / "monai_mlip")).expanduser()


def rank_zero_first(build: Callable[[], T]) -> T:
    """Call ``build`` on process 0 first and on the others after it finished (a barrier in between).

    Without a process group (or with one process) it is just ``build()``. First-use preparations use it so
    that under ``torchrun`` one process writes the cache and the others find it finished.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return build()
    if dist.get_rank() == 0:
        result = build()
    dist.barrier()
    if dist.get_rank() != 0:
        result = build()
    return result


def prepare_once(target: str | os.PathLike, build: Callable[[Path], object], what: str) -> str:
    """Run ``build(tmp_dir)`` unless ``target`` exists, then move the result to ``target`` atomically.

    Args:
        target: the finished folder.
        build: writes everything into the temporary folder it is given.
        what: a name for the log.

    Returns:
        ``target`` as a string.
    """
    target = Path(target)
    if target.is_dir():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        logger.info("preparing %s in %s (first use)", what, target)
        build(staging)
        from monai_mlip.atomic_io import default_mode

        staging.chmod(default_mode(directory=True))  # mkdtemp makes it private
        try:
            staging.rename(target)
        except OSError:  # another process finished first: keep theirs
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(target)


def ensure_text_model(out_dir: str | os.PathLike, corpus: Iterable[str], **kwargs: object) -> str:
    """The tiny preset's text model in ``out_dir``, built from ``corpus`` on first use and reused afterwards.

    Reuse matters: a resumed run and the downstream bundles must see the same tokenizer as the checkpoint.
    ``kwargs`` go to :func:`~monai_mlip.networks.build_tiny_text_model`.
    """
    from monai_mlip.networks import build_tiny_text_model

    # process 0 alone builds it: under torchrun, transformers' save_pretrained writes the weights on rank 0 only
    return rank_zero_first(
        lambda: prepare_once(
            out_dir, lambda staging: build_tiny_text_model(corpus, staging, **kwargs), "the tiny text model"
        )
    )


def synthetic_dataset(
    layout: str,
    n: int,
    seed: int = 0,
    image_size: int = 256,
    root: str | os.PathLike | None = None,
    workers: int | None = None,
) -> str:
    """The folder of a synthetic dataset in a native layout, generated on first use and cached.

    Args:
        layout: ``mimic``, ``rsna`` or ``siim``.
        n: studies (MIMIC) or patients/images (RSNA, SIIM).
        seed: the generation seed.
        image_size: side of the square images.
        root: parent folder (default ``cache_dir() / "synthetic"``); the dataset goes in a sub-folder
            named by its options, so different settings never overwrite each other.
        workers: rendering processes (default: every CPU); the files do not depend on it.

    Returns:
        The dataset folder, ready for the manifest builders.
    """
    from monai_mlip.synthetic import write_layout

    folder = Path(root) if root is not None else cache_dir() / "synthetic"
    out = folder / f"{layout}_n{n}_seed{seed}_{image_size}px"
    summary = rank_zero_first(
        lambda: write_layout(
            layout, out, n, seed=seed, image_size=image_size, workers=workers or os.cpu_count() or 1, progress=True
        )
    )
    if not summary.cached:
        logger.info("generated %s synthetic %s studies in %.0f s at %s", n, layout, summary.seconds, out)
    return str(out)
