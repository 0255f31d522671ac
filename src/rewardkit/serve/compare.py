"""``POST /compare``: a pairwise judge's comparisons over HTTP (the scoring is :mod:`rewardkit.judge_scoring`).

Request ``{"items": [{"prompt": ..., "response_a": ..., "response_b": ...}], "both_orders": true}`` (prompt and
responses are text or message lists, the field names of the A/B data format); response ``{"margins",
"position_bias", "margins_a_first", "margins_b_first"}``, one entry per item in request order (null for an item
dropped as over-long under ``truncation: drop``). Both orders of every item go through the server's one dynamic
batcher, like any other sequence.
"""

from __future__ import annotations

import asyncio

from ..data.errors import DataError
from ..data.readers import Record
from ..judge_scoring import encode_comparisons, judgements, present

FIELDS = ("prompt", "response_a", "response_b")


def _parse_items(service, items: list, both_orders: bool) -> list:
    from .items import _text_field
    from .server import _invalid

    prompts, a, b = [], [], []
    for i, data in enumerate(items):
        if not isinstance(data, dict):
            raise _invalid(["items", i], f"expected an object, got {type(data).__name__}", "type_error")
        rec = Record(data, "request", i)
        for name in FIELDS:
            if name in data:
                service._check_len(data[name], ["items", i, name])
        try:
            prompts.append(_text_field(rec, "prompt", allow_empty=True) if "prompt" in data else "")
            a.append(_text_field(rec, "response_a"))
            b.append(_text_field(rec, "response_b"))
        except DataError as err:
            raise _invalid(["items", i, *(err.field.split(".") if err.field else [])], err.message,
                           err.reason) from None
    try:
        return encode_comparisons(service.scorer, prompts, a, b, both_orders)
    except DataError as err:  # too long even after the truncation policy (e.g. truncation: error)
        raise _invalid(["items"], err.message, err.reason) from None


async def compare_request(service, body: object) -> dict:
    from .server import _invalid

    if not service.scorer.is_pairwise_judge:
        raise _invalid([], "POST /compare needs a pairwise judge (model.head judge, model.judge.mode pairwise); "
                       "score each response with POST /score", "value_error")
    items = service._item_list(body, "items")
    both = body.get("both_orders", True) if isinstance(body, dict) else True
    if not isinstance(both, bool):
        raise _invalid(["both_orders"], "expected true or false", "type_error")
    with service._bounded(body):
        loop = asyncio.get_running_loop()
        encoded = await loop.run_in_executor(service._tok_thread, _parse_items, service, items, both)
        rewards = await service.batcher.score(present(encoded))
    out = judgements(encoded, rewards)
    keys = {"margins": "margin", "position_bias": "position_bias", "margins_a_first": "margin_a_first",
            "margins_b_first": "margin_b_first"}
    return {key: [None if j is None else getattr(j, name) for j in out] for key, name in keys.items()}
