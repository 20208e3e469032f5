"""The tensors of a save_pretrained folder, and their comparison: what the resume and fault tests check."""
from pathlib import Path


def load_weights(folder) -> dict:
    """{name: tensor} of every safetensors file in `folder`."""
    from safetensors.torch import load_file

    out = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        out.update(load_file(f))
    return out


def assert_same_weights(a: dict, b: dict) -> None:
    import torch

    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
