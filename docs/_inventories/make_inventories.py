"""Write the intersphinx inventories of docs/_inventories/ without the network.

The documentation must build offline, so instead of downloading each project's ``objects.inv``
this script writes small inventories by hand: only the external names that appear in our
signatures and docstrings, each with the address of its page in that project's documentation.
Run it after adding a reference to a name that is not listed yet::

    python docs/_inventories/make_inventories.py

The files use Sphinx's inventory format, version 2 (a four-line header, then zlib-compressed
lines ``name domain:role priority uri display-name``; ``$`` at the end of a uri stands for the
name, ``-`` as the display name for the name itself).
"""

from __future__ import annotations

import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent

# project -> (title, {name: (domain:role, page#anchor or page#$)})
INVENTORIES: dict[str, tuple[str, dict[str, tuple[str, str]]]] = {
    "python": ("Python", {
        **{name: ("py:class", "library/functions.html#$") for name in ("int", "float", "bool", "object", "type")},
        **{name: ("py:class", "library/stdtypes.html#$")
           for name in ("str", "bytes", "dict", "list", "tuple", "set", "frozenset")},
        **{name: ("py:exception", "library/exceptions.html#$")
           for name in ("ValueError", "TypeError", "KeyError", "IndexError", "RuntimeError", "ImportError",
                        "OSError", "FileNotFoundError", "FileExistsError", "NotImplementedError",
                        "AttributeError", "UserWarning", "KeyboardInterrupt")},
        **{name: ("py:data", "library/constants.html#$") for name in ("None", "True", "False")},
        "typing.Any": ("py:data", "library/typing.html#$"),
        "typing.ClassVar": ("py:data", "library/typing.html#$"),
        "typing.Protocol": ("py:class", "library/typing.html#$"),
        "pathlib.Path": ("py:class", "library/pathlib.html#$"),
        "os.PathLike": ("py:class", "library/os.html#$"),
        "abc.ABC": ("py:class", "library/abc.html#$"),
        "inspect.Parameter": ("py:class", "library/inspect.html#$"),
        "argparse.ArgumentParser": ("py:class", "library/argparse.html#$"),
        "argparse.Namespace": ("py:class", "library/argparse.html#$"),
        "contextlib.AbstractContextManager": ("py:class", "library/contextlib.html#$"),
        "dataclasses.dataclass": ("py:function", "library/dataclasses.html#$"),
        "importlib.metadata": ("py:module", "library/importlib.metadata.html#module-$"),
        **{f"collections.abc.{name}": ("py:class", "library/collections.abc.html#$")
           for name in ("Mapping", "Sequence", "Callable", "Iterator", "Iterable")},
    }),
    "torch": ("PyTorch", {
        "torch.Tensor": ("py:class", "tensors.html#$"),
        "torch.device": ("py:class", "tensor_attributes.html#$"),
        "torch.dtype": ("py:class", "tensor_attributes.html#$"),
        "torch.Generator": ("py:class", "generated/torch.Generator.html#$"),
        "torch._C.Generator": ("py:class", "generated/torch.Generator.html#torch.Generator"),
        "torch.nn.Module": ("py:class", "generated/torch.nn.Module.html#$"),
        "torch.nn.modules.module.Module": ("py:class", "generated/torch.nn.Module.html#torch.nn.Module"),
        "torch.nn.Module.compile": ("py:method", "generated/torch.nn.Module.html#$"),
        "torch.nn.ModuleList": ("py:class", "generated/torch.nn.ModuleList.html#$"),
        "torch.nn.Linear": ("py:class", "generated/torch.nn.Linear.html#$"),
        "torch.nn.modules.linear.Linear": ("py:class", "generated/torch.nn.Linear.html#torch.nn.Linear"),
        "torch.nn.BatchNorm1d": ("py:class", "generated/torch.nn.BatchNorm1d.html#$"),
        "torch.nn.Parameter": ("py:class", "generated/torch.nn.parameter.Parameter.html#torch.nn.parameter.Parameter"),
        "torch.nn.parameter.Parameter": ("py:class", "generated/torch.nn.parameter.Parameter.html#$"),
        "torch.nn.parallel.DistributedDataParallel": ("py:class",
                                                      "generated/torch.nn.parallel.DistributedDataParallel.html#$"),
        "torch.nn.functional.scaled_dot_product_attention": (
            "py:function", "generated/torch.nn.functional.scaled_dot_product_attention.html#$"),
        "torch.nn.functional.interpolate": ("py:function", "generated/torch.nn.functional.interpolate.html#$"),
        "torch.nn.init.trunc_normal_": ("py:function", "nn.init.html#$"),
        "torch.compile": ("py:function", "generated/torch.compile.html#$"),
        "torch.autocast": ("py:class", "amp.html#$"),
        "torch.no_grad": ("py:function", "generated/torch.no_grad.html#$"),
        "torch.inference_mode": ("py:function", "generated/torch.inference_mode.html#$"),
        "torch.manual_seed": ("py:function", "generated/torch.manual_seed.html#$"),
        "torch.optim.AdamW": ("py:class", "generated/torch.optim.AdamW.html#$"),
        "torch.optim.Optimizer": ("py:class", "optim.html#$"),
        "torch.optim.optimizer.Optimizer": ("py:class", "optim.html#torch.optim.Optimizer"),
        "torch.optim.lr_scheduler.LambdaLR": ("py:class", "generated/torch.optim.lr_scheduler.LambdaLR.html#$"),
        "torch.utils.data.Dataset": ("py:class", "data.html#$"),
        "torch.utils.data.dataset.Dataset": ("py:class", "data.html#torch.utils.data.Dataset"),
        "torch.utils.data.DataLoader": ("py:class", "data.html#$"),
        "torch.utils.data.dataloader.DataLoader": ("py:class", "data.html#torch.utils.data.DataLoader"),
        "torch.utils.data.Sampler": ("py:class", "data.html#$"),
        "torch.utils.data.sampler.Sampler": ("py:class", "data.html#torch.utils.data.Sampler"),
        "torch.distributed.init_process_group": ("py:function", "distributed.html#$"),
        "torch.distributed.fsdp.fully_shard": ("py:function", "distributed.fsdp.fully_shard.html#$"),
    }),
    "numpy": ("NumPy", {
        "numpy.ndarray": ("py:class", "reference/generated/numpy.ndarray.html#$"),
        "numpy.dtype": ("py:class", "reference/generated/numpy.dtype.html#$"),
        "numpy.random.Generator": ("py:class", "reference/random/generator.html#$"),
    }),
    "gymnasium": ("Gymnasium", {
        "gymnasium.Env": ("py:class", "api/env/#$"),
        "gymnasium.core.Env": ("py:class", "api/env/#gymnasium.Env"),
        "gymnasium.Env.reset": ("py:method", "api/env/#$"),
        "gymnasium.Env.step": ("py:method", "api/env/#$"),
        "gymnasium.Env.render": ("py:method", "api/env/#$"),
        "gymnasium.make": ("py:function", "api/registry/#$"),
        "gymnasium.register": ("py:function", "api/registry/#$"),
        "gymnasium.spaces.Box": ("py:class", "api/spaces/fundamental/#$"),
        "gymnasium.spaces.Discrete": ("py:class", "api/spaces/fundamental/#$"),
    }),
    "PIL": ("Pillow", {
        "PIL.Image.Image": ("py:class", "reference/Image.html#$"),
        "PIL.Image.Image.crop": ("py:method", "reference/Image.html#$"),
    }),
}


def inventory_bytes(project: str, entries: dict[str, tuple[str, str]]) -> bytes:
    """One inventory file: the plain header, then the zlib-compressed entry lines."""
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        "# Version: \n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    lines = "".join(f"{name} {role} 1 {uri} -\n" for name, (role, uri) in sorted(entries.items()))
    return header.encode() + zlib.compress(lines.encode(), 9)


def main() -> None:
    """Write every inventory next to this script."""
    for name, (project, entries) in INVENTORIES.items():
        path = HERE / f"{name}.inv"
        path.write_bytes(inventory_bytes(project, entries))
        print(f"{path}: {len(entries)} names")


if __name__ == "__main__":
    main()
