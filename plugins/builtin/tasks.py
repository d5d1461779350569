"""Built-in tasks that need no download (MECHANISMS.md §7):

- ``lm``: language modelling over real text: bytes of the Python standard library's own source by default,
  or a dataset made by ``deconstruct data prepare`` (``data:``, any tokenizer, plus ``eval:`` sets); reports
  bits per byte and perplexity.
- ``mqar``: multi-query associative recall (Arora et al. 2023, "Zoology"); reports accuracy.
- ``cloze``: masked byte modelling with a bidirectional encoder (BERT4Rec-style); non-causal.
- ``icl_regression``: in-context linear regression (Garg et al. 2022); real-vector inputs through a linear
  read-in, MSE loss; reports the least-squares and zero-predictor baselines.
- ``pointer``: sort or copy n numbers by pointing at input positions (Vinyals et al. 2015, Pointer
  Networks); a pointer head's attention scores are the output distribution; reports accuracy.

Next to each ``register`` call, :func:`deconstruct.metrics.produces` says which per-run metrics the task's
runs carry beyond every run's (the study runner accepts them as objectives; reports show them).
"""

from __future__ import annotations

from typing import Any

from deconstruct.hookspecs import hookimpl
from deconstruct.metrics import declare, produces
from deconstruct.tasks._cloze import ClozeOptions
from deconstruct.tasks._icl import METRICS as ICL_METRICS
from deconstruct.tasks._icl import ICLRegressionOptions
from deconstruct.tasks._lm import LMOptions
from deconstruct.tasks._mqar import MQAROptions
from deconstruct.tasks._pointer import PointerOptions


@hookimpl
def register_tasks(register: Any) -> None:
    register("lm", build="deconstruct.tasks._lm:build_lm", options=LMOptions,
             summary="language modelling: stdlib bytes or a prepared dataset (bits per byte)")
    produces("lm", "bits_per_byte", "val_perplexity")
    register("mqar", build="deconstruct.tasks._mqar:MQAR", options=MQAROptions, summary="multi-query associative recall (accuracy)",
             paper="Arora et al. 2023, Zoology, arXiv 2312.04927")
    produces("mqar", "accuracy")
    register("cloze", build="deconstruct.tasks._cloze:Cloze", options=ClozeOptions, summary="masked byte modelling, bidirectional (accuracy)",
             paper="Sun et al. 2019, BERT4Rec, arXiv 1904.06690")
    produces("cloze", "accuracy")
    register("icl_regression", build="deconstruct.tasks._icl:ICLRegression", options=ICLRegressionOptions,
             summary="in-context linear regression, vector inputs (MSE vs least squares)",
             paper="Garg et al. 2022, What Can Transformers Learn In-Context?, arXiv 2208.01066")
    for metric in ICL_METRICS:
        declare(metric)
    produces("icl_regression", *(m.name for m in ICL_METRICS))
    register("pointer", build="deconstruct.tasks._pointer:Pointer", options=PointerOptions,
             summary="sort / copy by pointing at input positions; a pointer head's scores are the output (accuracy)",
             paper="Vinyals et al. 2015, Pointer Networks, arXiv 1506.03134")
    produces("pointer", "accuracy")
