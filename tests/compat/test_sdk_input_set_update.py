"""``Application.update_input_set`` through the real SDK: the set ends up with exactly the
inputs given. The SDK sends the set as it was (its ``input_ids`` too) with the new
``inputs``, so a daemon that joined the two could only ever add inputs."""

from __future__ import annotations

import json

from nextmv import cloud
from nextmv.polling import PollingOptions

from tests.helpers import SAMPLES, unique

INPUT = json.loads((SAMPLES / "knapsack" / "input.json").read_text())


def test_update_input_set_replaces_its_inputs(
    knapsack: cloud.Application, fast: PollingOptions
) -> None:
    run = knapsack.new_run_with_result(input=INPUT, polling_options=fast)
    first, second = (
        knapsack.new_managed_input(id=unique("mi"), name=name, run_id=run.id)
        for name in ("first", "second")
    )
    input_set = knapsack.new_input_set(id=unique("is"), inputs=[first, second])
    assert input_set.input_ids == [first.id, second.id]

    answered = knapsack.update_input_set(input_set.id, inputs=[second])
    assert answered.input_ids == [second.id]
    assert knapsack.input_set(input_set.id).input_ids == [second.id]
    assert [i.id for i in knapsack.input_set(input_set.id).inputs] == [second.id]

    renamed = knapsack.update_input_set(input_set.id, name="renamed")  # no inputs: they stay
    assert (renamed.name, renamed.input_ids) == ("renamed", [second.id])
    knapsack.delete_managed_input(first.id)  # out of every set now: it can go
