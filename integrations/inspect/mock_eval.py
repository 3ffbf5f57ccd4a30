"""Writes a real Inspect `.eval` log with Inspect's built-in mock model, without network.

Usage: python3 mock_eval.py LOG_DIR

Runs a two-sample arithmetic task on `mockllm/model`, which answers "2" to both, so one
sample is right and one wrong whatever their order (accuracy 0.5). The answers carry their token usage, so the mock model
does not fetch a tokenizer to count it. Prints the path of the `.eval` file written.
"""

import sys

from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.model import ModelOutput, ModelUsage, get_model
from inspect_ai.scorer import includes
from inspect_ai.solver import generate


def answer(text: str) -> ModelOutput:
    output = ModelOutput.from_content(model="mockllm/model", content=text)
    output.usage = ModelUsage(input_tokens=12, output_tokens=1, total_tokens=13)
    return output


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: mock_eval.py LOG_DIR")
    task = Task(
        name="arithmetic",
        dataset=[
            Sample(input="What is 1 + 1? Answer with the number only.", target="2"),
            Sample(input="What is 2 + 2? Answer with the number only.", target="4"),
        ],
        solver=[generate()],
        scorer=includes(),
    )
    model = get_model("mockllm/model", custom_outputs=[answer("2"), answer("2")])
    [log] = eval(task, model=model, log_dir=sys.argv[1], log_format="eval", display="none")
    if log.status != "success":
        sys.exit(f"the evaluation did not finish: status {log.status}")
    print(log.location)


if __name__ == "__main__":
    main()
