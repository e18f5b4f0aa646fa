"""nncf: ``compress_weights(model, mode=..., dataset=nncf.Dataset([example_input]))``.

Two things nncf's torch path needs that are easy to get wrong (see the evidence runs):
it traces the model, so it needs an example input; and it adds a ``__nncf_hooks`` child
to the root module, which an ``nn.Sequential`` root would then call as a layer. Such a
root is wrapped in a plain module first, and the wrapper is what ``apply`` returns.
"""

from __future__ import annotations

from quantdoctor.engines.base import (
    EngineAdapter,
    Progress,
    engine_module,
    named_linears,
    scheme_api,
)
from quantdoctor.errors import InvalidInputError

TYPE_CHECKING = False  # typing costs `detect` ~3 ms of imports
if TYPE_CHECKING:
    from typing import Any

    import torch

    from quantdoctor.rules.models import Plan


def _wrap_root(module: torch.nn.Module) -> torch.nn.Module:
    """A plain module around a container root, so nncf's hook child is never called as a layer."""
    import torch

    if not isinstance(module, (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)):
        return module

    class NncfRoot(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return self.inner(*args, **kwargs)

    return NncfRoot(module)


class NncfAdapter(EngineAdapter):
    engine = "nncf"

    def apply(
        self,
        module: torch.nn.Module,
        plan: Plan,
        *,
        example_input: Any,
        progress: Progress | None,
    ) -> torch.nn.Module:
        mode_name = scheme_api(self.spec, plan)  # an nncf.CompressWeightsMode member
        if example_input is None:
            raise InvalidInputError(
                "example_input: nncf traces the model before it compresses the weights; pass "
                "quantize(..., example_input=x) with one input the model accepts (a tensor, "
                "a tuple of positional arguments, or a dict of keyword arguments)"
            )
        nncf = engine_module("nncf")
        advanced = engine_module("nncf.quantization.advanced_parameters")

        kwargs: dict[str, Any] = {}
        if mode_name.startswith("INT4"):
            # layers narrower than the group (128) stay as they are instead of failing
            kwargs["advanced_parameters"] = advanced.AdvancedCompressionParameters(
                group_size_fallback_mode=advanced.GroupSizeFallbackMode.IGNORE
            )
        root = _wrap_root(module)
        compressed: torch.nn.Module = nncf.compress_weights(
            root,
            mode=getattr(nncf.CompressWeightsMode, mode_name),
            dataset=nncf.Dataset([example_input]),
            **kwargs,
        )
        if progress is not None:  # one engine call: the bar fills when it returns
            progress.advance(len(named_linears(module)))
        return compressed


ADAPTER = NncfAdapter
