"""``rewardkit score`` and ``rewardkit serve`` for process reward models (the scoring itself is
:mod:`rewardkit.step_scoring`)."""

from __future__ import annotations

from ..data.step_tokenize import EncodedSteps
from ..step_scoring import aggregate, score_step_sequences, split_steps, steps_config


def score_steps_file(scorer, input_path: str, output_path: str, fmt: str, on_invalid: str = "error",
                     progress: bool = True):
    """``rewardkit score`` with a step model: every ``{prompt, steps, ...}`` record (any step layout the model's
    data config reads; labels optional) gets ``step_rewards`` and ``reward``; invalid records (skipped) and
    solutions whose first step does not fit get nulls, so rows stay aligned with the input."""
    import time

    from ..config import DataConfig
    from ..data.errors import DataError, SkipReport, skip_or_raise
    from ..data.readers import read_records
    from ..data.step_tokenize import StepDropped
    from ..data.steps import parse_stepwise
    from .batch import ScoreFileResult, write_records

    start = time.perf_counter()
    report, rows, slots, items, dropped = SkipReport(), [], [], [], 0
    cfg = DataConfig(steps=steps_config(scorer.meta))
    for rec in read_records(input_path, on_invalid, report):
        rows.append(dict(rec.data))
        rows[-1].update({"step_rewards": None, "reward": None})
        try:
            items.append(scorer.step_encoder.encode(parse_stepwise(rec, cfg.fields.prompt, cfg.steps)))
        except DataError as err:
            skip_or_raise(err, on_invalid, report)
            continue
        except StepDropped:
            dropped += 1
            continue
        slots.append(len(rows) - 1)
    probs = score_step_sequences(scorer.model, items, scorer.tokenizer.pad_token_id, scorer.device,
                                 scorer.max_tokens, scorer.max_batch)
    for i, p in zip(slots, probs, strict=True):
        rows[i]["step_rewards"], rows[i]["reward"] = p, aggregate(p, scorer.meta.step_aggregate)
    write_records(rows, output_path, fmt)
    return ScoreFileResult(records=len(rows), sequences=len(items), skipped=report.summary(), dropped=dropped,
                           truncation=scorer.step_encoder.stats.summary(), seconds=time.perf_counter() - start)


def _encode_step_items(service, items: list) -> list[EncodedSteps | None]:
    from ..data.errors import DataError
    from ..data.readers import Record
    from ..data.step_tokenize import StepDropped
    from ..data.steps import parse_stepwise
    from .server import _invalid

    scorer, cfg = service.scorer, steps_config(service.scorer.meta)
    out: list[EncodedSteps | None] = []
    for i, data in enumerate(items):
        if not isinstance(data, dict):
            raise _invalid(["items", i], f"expected an object, got {type(data).__name__}", "type_error")
        for name in ("prompt", "response"):
            if name in data:
                service._check_len(data[name], ["items", i, name])
        for j, step in enumerate(data.get("steps") or []):
            service._check_len(step, ["items", i, "steps", j])
        if "steps" not in data and isinstance(data.get("response"), str):
            data = {**data, "steps": split_steps(scorer, data["response"])} if data["response"].strip() else data
        try:
            out.append(scorer.step_encoder.encode(parse_stepwise(Record(data, "request", i), "prompt", cfg)))
        except DataError as err:
            raise _invalid(["items", i, *(err.field.replace("[", ".").rstrip("]").split(".") if err.field else [])],
                           err.message, err.reason) from None
        except ValueError as err:
            raise _invalid(["items", i, "response"], str(err), "value_error") from None
        except StepDropped:
            out.append(None)  # not even the first step fits: null rewards
    return out


async def score_step_request(service, items: list, loop) -> dict:
    """The server's ``/score`` for a step model: ``{"rewards", "step_rewards"}`` in request order."""
    encoded = await loop.run_in_executor(service._tok_thread, _encode_step_items, service, items)
    present = [x for x in encoded if x is not None]
    s = service.scorer

    def forward() -> list[list[float]]:
        return score_step_sequences(s.model, present, s.tokenizer.pad_token_id, s.device, service.cfg.max_tokens,
                                    service.cfg.max_batch)

    probs = iter(await loop.run_in_executor(service.batcher._model_thread, forward) if present else [])
    step_rewards = [next(probs) if x is not None else None for x in encoded]
    service.metrics.items += len(present)
    rewards = [aggregate(p, s.meta.step_aggregate) if p is not None else None for p in step_rewards]
    return {"rewards": rewards, "step_rewards": step_rewards}
