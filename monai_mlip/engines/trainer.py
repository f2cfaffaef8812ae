"""The MLIP pre-training iteration as a MONAI trainer.

:class:`MLIPTrainer` is MONAI's :class:`~monai.engines.SupervisedTrainer` with its iteration replaced:
the network takes the image and the tokenised report (``prepare_batch`` is
:class:`~monai.engines.PrepareBatchExtraInput` with ``input_ids``, ``attention_mask`` and
``sentence_index``), the loss is a dict of named terms (:class:`~monai_mlip.losses.Objective`), gradients
are clipped before the optimiser step, and a non-finite loss or a non-finite gradient norm skips the step
(it is logged, counted in ``engine.state.nonfinite_steps`` and, past ``max_nonfinite_steps`` in a row,
stops the run with an error): a finite loss can still back-propagate NaN gradients (an overflow in one
layer), and one optimiser step on them makes every later weight NaN. After each step the model's
:meth:`~monai_mlip.networks.MLIP.after_optimizer_step` runs (the logit scales are clamped, the divergence
encoder's average moves). Mixed precision on a GPU
is bf16 autocast, which needs no gradient scaler. Items a loader dropped as unreadable
(:func:`~monai_mlip.data.skip_bad_collate`) are added up in ``engine.state.skipped_items``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import torch
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys

from monai_mlip.errors import NonFiniteLossError
from monai_mlip.networks.mlip import unwrap

__all__ = ["MLIPTrainer"]

logger = logging.getLogger("monai_mlip.engines")


class MLIPTrainer(SupervisedTrainer):
    """MONAI trainer for MLIP pre-training.

    Takes every argument of :class:`~monai.engines.SupervisedTrainer`, plus:

    Args:
        max_grad_norm: clip the global gradient norm to this value before each step (``None``: no clipping).
        max_nonfinite_steps: consecutive non-finite losses tolerated (each skips its step) before the run
            stops with :class:`NonFiniteLossError`.
        id_key: batch key naming the items of a batch in the non-finite warning.
        amp_dtype: autocast dtype when ``amp`` is on (bf16: no gradient scaler needed).

    After the iteration ``engine.state.output`` holds floats only: every loss term and statistic of the
    loss (``loss`` is the total) and the learning rate of the first parameter group as ``lr``, ready for
    ``StatsHandler`` and ``TensorBoardStatsHandler``. Handlers that need the model output read
    ``engine.state.output["pred"]`` at ``IterationEvents.FORWARD_COMPLETED``.
    """

    def __init__(
        self,
        *args: Any,
        max_grad_norm: float | None = 1.0,
        max_nonfinite_steps: int = 10,
        id_key: str = "study_id",
        amp_dtype: torch.dtype = torch.bfloat16,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("decollate", False)  # the output is a dict of loss terms, not per-item predictions
        super().__init__(*args, **kwargs)
        self.max_grad_norm = max_grad_norm
        self.max_nonfinite_steps = max_nonfinite_steps
        self.id_key = id_key
        self.amp_dtype = amp_dtype
        self.state.nonfinite_steps = 0
        self.state.nonfinite_in_a_row = 0
        self.state.skipped_items = 0

    def _autocast(self) -> Any:
        device_type = torch.device(self.state.device).type
        return torch.autocast(device_type, dtype=self.amp_dtype, enabled=bool(self.amp))

    def _skip_nonfinite(self, what: str, terms: Mapping[str, torch.Tensor], batchdata: Mapping[str, Any]) -> None:
        self.state.nonfinite_steps += 1
        self.state.nonfinite_in_a_row += 1
        ids = batchdata.get(self.id_key, "?")
        values = {name: float(value.detach()) for name, value in terms.items() if name.startswith("loss")}
        logger.warning(
            "non-finite %s at iteration %d (losses %s), optimiser step skipped (%d in a row); batch %s: %s",
            what,
            self.state.iteration,
            values,
            self.state.nonfinite_in_a_row,
            self.id_key,
            ids,
        )
        if self.state.nonfinite_in_a_row > self.max_nonfinite_steps:
            raise NonFiniteLossError(
                f"{self.state.nonfinite_in_a_row} consecutive non-finite steps (last: {what}, losses {values}); "
                "stopping. Lower the "
                "learning rate, check the inputs named above, or resume from the last checkpoint."
            )

    def _iteration(self, engine: MLIPTrainer, batchdata: dict[str, Any]) -> dict[str, Any]:  # type: ignore[override]
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        # items dropped at load time (monai_mlip.data.skip_bad_collate under on_error="skip")
        engine.state.skipped_items += int(batchdata.get("skipped_items", 0))
        image, _, args, kwargs = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking)
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        with engine._autocast():
            prediction = engine.inferer(image, engine.network, *args, **kwargs)
            engine.state.output = {Keys.IMAGE: image, Keys.PRED: prediction}
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            terms = engine.loss_function(prediction)
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        loss = terms["loss"]
        grad_norm = float("nan")
        if not torch.isfinite(loss):
            engine._skip_nonfinite("loss", terms, batchdata)
        else:
            loss.backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            # the total norm before clipping; with DDP every process sees the same averaged gradients
            limit = engine.max_grad_norm if engine.max_grad_norm is not None else float("inf")
            grad_norm = float(torch.nn.utils.clip_grad_norm_(engine.network.parameters(), limit))
            if math.isfinite(grad_norm):
                engine.state.nonfinite_in_a_row = 0
                engine.optimizer.step()
                after_step = getattr(unwrap(engine.network), "after_optimizer_step", None)
                if after_step is not None:
                    after_step()
            else:
                engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
                engine._skip_nonfinite("gradient norm", terms, batchdata)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        output = {name: float(value.detach()) for name, value in terms.items()}
        output[Keys.LOSS] = output.pop("loss")
        output["grad_norm"] = grad_norm
        output["lr"] = float(engine.optimizer.param_groups[0]["lr"])
        engine.state.output = output
        return output
