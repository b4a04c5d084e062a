"""The README's snippets run as written, and say what they claim."""

import pathlib
import re

import numpy as np
import pytest

README = pathlib.Path(__file__).parents[1] / "README.md"


def snippets(section: str) -> list[str]:
    """The ```python blocks of a README section, in order."""
    text = README.read_text()
    start = text.index(f"## {section}\n")
    end = text.index("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


@pytest.mark.slow
def test_your_own_networks_snippets_run_and_hold():
    blocks = snippets("Your own networks")
    assert len(blocks) == 4
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert 0.5 < namespace["result"].estimate < 1.5  # NNX critic; true MI 1.39 nats
    assert namespace["scores"].shape == (256, 256)
    np.testing.assert_allclose(
        namespace["tiled"], namespace["bounds"].infonce(namespace["scores"]), rtol=1e-5
    )
    assert np.isfinite(float(namespace["measured"]["loss"]))
    assert int(namespace["state"].step) == 1


@pytest.mark.slow
def test_estimating_mi_snippet_runs_on_ten_sets_and_holds():
    _, block = snippets("Estimating MI from samples")
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(10, 600, 2))
    ys = xs + rng.normal(size=xs.shape)  # I = log 2 = 0.69 nats
    namespace = {"xs": xs, "ys": ys, "x": xs[0], "y": ys[0]}
    exec(compile(block, str(README), "exec"), namespace)
    assert len(namespace["results"]) == 10
    result = namespace["result"]
    assert 0.2 < result.estimate < 0.8 and len(result.pointwise) == result.num_heldout
